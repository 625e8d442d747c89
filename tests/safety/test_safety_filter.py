"""Image flags from captions and pair filtering."""

import pandas as pd

from tasks.safety.text_screen import apply_child_safety, image_flags, screen_texts

TEXTS = pd.DataFrame(
    {
        "query_id": ["a.jpg#0", "a.jpg#1", "b.jpg#0", "b.jpg#1", "c.jpg#0"],
        "query_text": ["A dog on grass", "A boy throws a stick to a dog", "A red car", "A parked car", "Two kids"],
    }
)


def test_image_is_flagged_when_any_own_caption_is():
    flags = image_flags(screen_texts(TEXTS)).set_index("image")
    assert flags.loc["a.jpg", "flagged"] and flags.loc["a.jpg", "flagged_captions"] == 1
    assert flags.loc["a.jpg", "captions"] == 2 and flags.loc["a.jpg", "terms"] == ["boy"]
    assert not flags.loc["b.jpg", "flagged"]
    assert flags.loc["c.jpg", "flagged"]


def test_pairs_leave_when_text_or_image_is_flagged():
    pairs = pd.DataFrame(
        {
            "image": ["a.jpg", "b.jpg", "b.jpg", "d.jpg"],
            "query_id": ["b.jpg#0", "c.jpg#0", "b.jpg#1", "b.jpg#0"],
            "target": [0.0, 0.0, 1.0, 0.2],
        }
    )
    outcome = apply_child_safety(pairs, TEXTS)
    # a.jpg shows a boy (own caption); c.jpg#0 is a text about kids; d.jpg has no caption: kept.
    assert outcome.kept[["image", "query_id"]].values.tolist() == [["b.jpg", "b.jpg#1"], ["d.jpg", "b.jpg#0"]]
    summary = outcome.summary
    assert (summary.pairs_before, summary.pairs_flagged, summary.pairs_after) == (4, 2, 2)
    assert (summary.pairs_flagged_by_text, summary.pairs_flagged_by_image) == (1, 1)
    assert (summary.texts_flagged, summary.images_flagged) == (2, 2)
    assert summary.terms == {"boy": 1, "kid": 1}
    assert outcome.removed["flagged_image"].tolist() == [True, False]
