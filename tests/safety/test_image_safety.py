"""Image labels from captions and ratings, the detector's two thresholds, and the one safety decision."""

import numpy as np
import pandas as pd
import pytest

from tasks.safety.image_detector import (
    ChildImageDetector,
    DetectorParams,
    Thresholds,
    ViewMaxClassifier,
    choose_thresholds,
    fit_child_detector,
    operating_point,
    precision_threshold,
    recall_threshold,
)
from tasks.safety.image_labels import label_images
from tasks.safety.policy import decide, drop_hidden_images, image_evidence
from tasks.safety.text_screen import apply_child_safety, image_flags, screen_texts

TEXTS = pd.DataFrame(
    {
        "query_id": ["a.jpg#0", "b.jpg#0", "c.jpg#0", "d.jpg#0"],
        "query_text": ["A boy runs on the beach .", "A man rides a bike .", "A dog swims .", "Two men climb ."],
    }
)
# Ratings in the ratings stage's units: expert_score = (mean score - 1) / 3, crowd_share in [0, 1].
RATED = pd.DataFrame(
    {
        "image": ["b.jpg", "c.jpg", "d.jpg", "e.jpg"],
        "query_id": ["a.jpg#0", "a.jpg#0", "a.jpg#0", "b.jpg#0"],
        "expert_score": [2 / 3, 1 / 3, np.nan, 1.0],  # b: mean 3 (a match); c: mean 2 (no match)
        "crowd_share": [np.nan, 0.0, 0.5, 1.0],  # d: half the crowd said yes; e: rated with an adult caption
    }
)


def test_labels_count_each_source_and_what_it_adds():
    flags = screen_texts(TEXTS)
    flagged = set(flags.loc[flags["flagged"], "query_id"])
    labels = label_images(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"], image_flags(flags), RATED, flagged)
    table = labels.table.set_index("image")
    assert labels.children() == {"a.jpg", "b.jpg", "d.jpg"}
    assert (labels.counts.by_captions, labels.counts.added_by_expert, labels.counts.added_by_crowd) == (1, 1, 1)
    assert table.loc["e.jpg", "labelled"] == False  # noqa: E712 -- rated, but only with an adult caption
    assert table.loc["f.jpg", "captions"] == 0 and not table.loc["f.jpg", "labelled"]


def test_thresholds_come_from_the_precision_recall_curve():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0])
    assert recall_threshold(scores, labels, 1.0) == 0.4
    assert recall_threshold(scores, labels, 0.5) == 0.8
    assert precision_threshold(scores, labels, 1.0) == 0.8
    assert precision_threshold(scores, labels, 0.75) == 0.6
    assert precision_threshold(np.array([0.9, 0.1]), np.array([0, 1]), 0.99) == float("inf")
    # the confident threshold never sits below the high-recall one
    both = choose_thresholds(scores, labels, DetectorParams(high_recall=0.5, confident_precision=0.5))
    assert both == Thresholds(high_recall=0.8, confident=0.8)
    point = operating_point(scores, labels, 0.6)
    assert (point.children_hidden, point.adults_hidden, point.adults_kept_share) == (3, 1, 0.8)


def test_decision_combines_human_evidence_with_the_right_threshold():
    evidence = pd.DataFrame(
        {
            "image": ["flagged.jpg", "rated.jpg", "captioned.jpg", "captioned_sure.jpg", "new.jpg"],
            "captions": [1, 1, 1, 1, 0],
            "flagged": [True, True, False, False, False],
            "source": ["captions", "ratings", "", "", ""],
            "terms": [["boy"], [], [], [], []],
        }
    )
    scores = np.array([0.0, 0.0, 0.5, 0.95, 0.5])
    decisions = decide(evidence, scores, Thresholds(high_recall=0.3, confident=0.9), min_captions=1)
    assert decisions["hidden"].tolist() == [True, True, False, True, True]
    assert decisions["source"].tolist() == ["captions", "ratings", "", "detector", "detector"]
    # with two captions needed, a single caption no longer vouches for an image
    stricter = decide(evidence, scores, Thresholds(high_recall=0.3, confident=0.9), min_captions=2)
    assert stricter["hidden"].tolist() == [True, True, True, True, True]


def test_unknown_images_have_no_captions():
    evidence = image_evidence(
        ["x.jpg"], pd.DataFrame({"image": ["y.jpg"], "captions": [3], "flagged": [False], "terms": [[]]})
    )
    assert evidence.loc[0, "captions"] == 0 and not evidence.loc[0, "flagged"]


def test_hidden_images_leave_the_training_set():
    pairs = pd.DataFrame(
        {"image": ["b.jpg", "c.jpg", "d.jpg"], "query_id": ["c.jpg#0", "b.jpg#0", "c.jpg#0"], "target": [0.5, 0.2, 0.1]}
    )
    outcome = apply_child_safety(pairs, TEXTS)
    after = drop_hidden_images(outcome, {"d.jpg"})
    assert after.kept["image"].tolist() == ["b.jpg", "c.jpg"]
    assert after.summary.pairs_after == outcome.summary.pairs_after - 1
    assert after.removed["image"].tolist()[-1] == "d.jpg"


def _synthetic(n=400, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    direction = rng.normal(size=dim)
    return rng.normal(size=(n, dim)) + np.outer(labels * 4.0, direction / np.linalg.norm(direction)), labels


def test_detector_fits_out_of_fold_and_round_trips(tmp_path):
    features, labels = _synthetic()
    fit = fit_child_detector(features, labels, "fake-image", DetectorParams(high_recall=0.95))
    assert fit.at(fit.detector.thresholds.high_recall).recall >= 0.95
    assert fit.at(fit.detector.thresholds.confident).precision >= 0.9
    loaded = ChildImageDetector.load(fit.detector.save(tmp_path / "detector.joblib"))
    assert loaded.thresholds == fit.detector.thresholds and loaded.encoder_id == "fake-image"
    np.testing.assert_allclose(loaded.scores(features), fit.detector.scores(features))
    with pytest.raises(ValueError, match="at least 5 of each"):
        fit_child_detector(features[:20], np.r_[np.ones(2), np.zeros(18)], "fake-image")


class _FixedScores:
    """A stand-in classifier whose score is the first feature."""

    def predict_proba(self, features):
        return np.c_[1 - features[:, 0], features[:, 0]]


def test_training_images_are_judged_by_their_out_of_fold_score_on_every_file_path(tmp_path):
    """The final detector saw each training image's label: a child no caption mentions was labelled "no child"
    and scores low there. Search and scoring must use the out-of-fold score the training set was judged by."""
    from tasks.embed.cache import hash_files
    from tasks.safety.policy import SafetyPolicy, record_training_decisions

    files = {name: tmp_path / name for name in ("quiet_child.jpg", "adult.jpg", "unlabelled.jpg")}
    for name, path in files.items():
        path.write_bytes(name.encode())
    flags = pd.DataFrame(
        {
            "image": ["quiet_child.jpg", "adult.jpg", "unlabelled.jpg", "test.jpg"],
            "captions": [2, 2, 0, 1],
            "flagged_captions": 0,
            "flagged": False,
            "source": "",
            "terms": [[], [], [], []],
            "sha256": [*hash_files(list(files.values())), "0" * 64],
        }
    )
    thresholds = Thresholds(high_recall=0.3, confident=0.6)
    # the run: out-of-fold scores of the labelled images, the final detector's score for the unlabelled one
    decisions = decide(
        image_evidence(["quiet_child.jpg", "adult.jpg", "unlabelled.jpg"], flags),
        np.array([0.8, 0.1, 0.7]),
        thresholds,
        min_captions=1,
    )
    assert decisions["hidden"].tolist() == [True, False, True]
    recorded = record_training_decisions(flags, decisions, ["quiet_child.jpg", "adult.jpg"], np.array([0.8, 0.1]))
    assert recorded["oof_score"].tolist()[:2] == [0.8, 0.1] and recorded["oof_score"].isna().tolist()[2:] == [
        True,
        True,
    ]
    assert recorded["hidden"].tolist() == [True, False, True, False]

    # the final detector scores every file low, the quiet child included
    policy = SafetyPolicy(ChildImageDetector(_FixedScores(), "fake-image", thresholds), recorded, min_captions=1)
    low = np.full((1, 1), 0.05)
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(files["quiet_child.jpg"].read_bytes())
    other = tmp_path / "other" / "quiet_child.jpg"  # the same name, other bytes: judged by the detector itself
    other.parent.mkdir()
    other.write_bytes(b"another picture")
    paths = [files["quiet_child.jpg"], copy, files["adult.jpg"], files["unlabelled.jpg"], other]
    out = policy.decide_files(paths, np.repeat(low, len(paths), axis=0))
    assert out["hidden"].tolist() == [True, True, False, True, False]
    assert out["score"].tolist()[:3] == [0.8, 0.8, 0.1]
    assert out["source"].tolist()[3] == "detector" and "training set" in out["detail"].tolist()[3]

    # flags written before out-of-fold scores were recorded: the detector's own scores, as before
    old = SafetyPolicy(ChildImageDetector(_FixedScores(), "fake-image", thresholds), flags, min_captions=1)
    assert not old.decide_files(paths, np.repeat(low, len(paths), axis=0))["hidden"].any()


def _views(n_children: int, n_adults: int, views: int = 5, width: int = 6, seed: int = 0):
    """Rows of `views` vectors side by side; a child shows (feature 0 high) in one random view only."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 1, (n_children + n_adults, views, width))
    rows[np.arange(n_children), rng.integers(0, views, n_children), 0] += 4.0
    return rows.reshape(len(rows), -1), np.r_[np.ones(n_children), np.zeros(n_adults)].astype(int)


def test_view_max_scores_the_pooled_vector_and_each_view_and_keeps_the_highest():
    features, labels = _views(60, 60)
    model = ViewMaxClassifier(_LogReg(), 5).fit(features, labels)
    by_view = features.reshape(len(features), 5, -1)
    per_view = model.inner.predict_proba(by_view.reshape(-1, by_view.shape[2]))[:, 1].reshape(len(features), 5)
    pooled = model.inner.predict_proba(by_view.max(axis=1))[:, 1]
    proba = model.predict_proba(features)
    np.testing.assert_allclose(proba[:, 1], np.maximum(pooled, per_view.max(axis=1)))
    assert (proba[:, 1] > pooled).any()  # some view scores above the pooled vector
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[labels == 1, 1].mean() > proba[labels == 0, 1].mean() + 0.3
    with pytest.raises(ValueError, match="5 views side by side"):
        model.predict_proba(features[:, :-1])


def test_a_tileviews_detector_is_a_view_max_classifier_end_to_end(tmp_path):
    features, labels = _views(40, 60, seed=1)
    fit = fit_child_detector(features, labels, "efficientnet-lite0-tileviews", DetectorParams(high_recall=0.95))
    assert isinstance(fit.detector.model, ViewMaxClassifier) and fit.detector.model.views == 5
    assert fit.at(fit.detector.thresholds.high_recall).recall >= 0.95
    loaded = ChildImageDetector.load(fit.detector.save(tmp_path / "detector.joblib"))
    np.testing.assert_allclose(loaded.scores(features), fit.detector.scores(features))


class _LogReg:
    """Plain logistic regression (sklearn), so the view-max test does not depend on the CV grid."""

    def __init__(self):
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(max_iter=1000)

    def fit(self, x, y):
        self.model.fit(x, y)
        return self

    def predict_proba(self, x):
        return self.model.predict_proba(x)
