"""Image flags from captions, pair filtering, and the image-level child detector on synthetic vectors."""

import numpy as np
import pandas as pd
import pytest

from tasks.safety.image_detector import ChildImageDetector, recall_threshold, train_child_detector
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


def test_recall_threshold_reaches_target():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2])
    labels = np.array([1, 1, 1, 1, 0, 0])
    assert recall_threshold(scores, labels, 1.0) == 0.6
    assert recall_threshold(scores, labels, 0.5) == 0.8


def _synthetic(n=600, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    direction = rng.normal(size=dim)
    embeddings = rng.normal(size=(n, dim)) + np.outer(labels * 4.0, direction / np.linalg.norm(direction))
    return embeddings, labels


def test_detector_reaches_recall_on_held_out_and_round_trips(tmp_path):
    embeddings, labels = _synthetic()
    detector, report = train_child_detector(embeddings, labels, target_recall=0.95, seed=0)
    assert report.validation.recall >= 0.95
    assert report.test.recall >= 0.85 and report.test.precision >= 0.6
    path = detector.save(tmp_path / "detector.joblib")
    loaded = ChildImageDetector.load(path)
    assert loaded.threshold == detector.threshold
    np.testing.assert_array_equal(loaded.predict(embeddings), detector.predict(embeddings))


def test_unfitted_detector_refuses():
    with pytest.raises(RuntimeError, match="not fitted"):
        ChildImageDetector().scores(np.zeros((1, 3)))
