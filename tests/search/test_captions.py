"""Own captions for "why this scored": only for the bytes they were written for, never when one is flagged."""

from __future__ import annotations

import hashlib

import pandas as pd


def test_captions_by_image_groups_by_the_query_id_image_in_order():
    from tasks.search.captions import captions_by_image

    texts = pd.DataFrame(
        {"query_id": ["b.jpg#1", "a.jpg#1", "a.jpg#0", "a.jpg#0"], "query_text": ["B", "A1", "A0", "A0 again"]}
    )
    assert captions_by_image(texts) == {"a.jpg": ("A0", "A1"), "b.jpg": ("B",)}


def test_captions_vouch_only_for_the_captioned_bytes_and_not_when_one_is_flagged(tmp_path):
    from tasks.search.captions import GalleryCaptions

    for name, data in {"same.jpg": b"one", "edited.jpg": b"two", "flagged.jpg": b"three"}.items():
        (tmp_path / name).write_bytes(data)
    recorded = {
        "same.jpg": hashlib.sha256(b"one").hexdigest(),
        "edited.jpg": hashlib.sha256(b"the original").hexdigest(),
        "flagged.jpg": hashlib.sha256(b"three").hexdigest(),
    }
    captions = GalleryCaptions(
        tmp_path,
        {"same.jpg": ("a dog",), "edited.jpg": ("a cat",), "flagged.jpg": ("a man", "BAD")},
        recorded,
    )
    found = captions.of(["same.jpg", "edited.jpg", "flagged.jpg", "unknown.jpg"], lambda ts: [t == "BAD" for t in ts])
    assert found == {"same.jpg": ["a dog"], "edited.jpg": [], "flagged.jpg": [], "unknown.jpg": []}
