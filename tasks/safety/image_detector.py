"""The image-level child detector: logistic regression on image features, with two thresholds chosen out of fold.

- the high-recall threshold catches `high_recall` (0.95) of the labelled child images: it is used where no
  human caption speaks for an image;
- the confident threshold is the lowest one whose precision reaches `confident_precision` (0.9): it is used
  where human captions describe the image without a child, so only a clear detection overrides them.
Both come from out-of-fold scores (each labelled image scored by a model that never saw it), then the final
model is fitted on every labelled image. Thresholds use scikit-learn's `precision_recall_curve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Inverse regularisation strengths tried in the inner cross-validation (about 1000 images, 1280 features:
# practicum-dev picks 0.001-0.003).
C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


@dataclass(frozen=True)
class DetectorParams:
    high_recall: float = 0.95
    confident_precision: float = 0.9
    folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class Thresholds:
    high_recall: float
    confident: float


@dataclass(frozen=True)
class OperatingPoint:
    """The detector alone at one threshold, on out-of-fold scores of the labelled images."""

    threshold: float
    precision: float
    recall: float
    children: int
    adults: int
    children_hidden: int
    adults_hidden: int
    adults_kept_share: float


def operating_point(scores: np.ndarray, labels: np.ndarray, threshold: float) -> OperatingPoint:
    hidden = np.asarray(scores) >= threshold
    child = np.asarray(labels).astype(bool)
    children_hidden, adults_hidden = int((hidden & child).sum()), int((hidden & ~child).sum())
    return OperatingPoint(
        threshold=float(threshold),
        precision=children_hidden / int(hidden.sum()) if hidden.any() else 1.0,
        recall=children_hidden / int(child.sum()) if child.any() else 1.0,
        children=int(child.sum()),
        adults=int((~child).sum()),
        children_hidden=children_hidden,
        adults_hidden=adults_hidden,
        adults_kept_share=1.0 - adults_hidden / int((~child).sum()) if (~child).any() else 1.0,
    )


def recall_threshold(scores: np.ndarray, labels: np.ndarray, target_recall: float) -> float:
    """The highest threshold whose recall reaches `target_recall` (so precision is as good as that allows)."""
    from sklearn.metrics import precision_recall_curve

    _, recall, thresholds = precision_recall_curve(np.asarray(labels).astype(int), scores)
    reaching = np.flatnonzero(recall[:-1] >= target_recall)  # recall falls as the threshold rises
    return float(thresholds[reaching[-1]])


def precision_threshold(scores: np.ndarray, labels: np.ndarray, target_precision: float) -> float:
    """The lowest threshold whose precision reaches `target_precision`; +inf (flag nothing) if none does."""
    from sklearn.metrics import precision_recall_curve

    precision, _, thresholds = precision_recall_curve(np.asarray(labels).astype(int), scores)
    reaching = np.flatnonzero(precision[:-1] >= target_precision)
    return float(thresholds[reaching[0]]) if reaching.size else float("inf")


def choose_thresholds(scores: np.ndarray, labels: np.ndarray, params: DetectorParams) -> Thresholds:
    high_recall = recall_threshold(scores, labels, params.high_recall)
    # The confident threshold never falls below the high-recall one: captions only ever lower the suspicion.
    confident = max(precision_threshold(scores, labels, params.confident_precision), high_recall)
    return Thresholds(high_recall=high_recall, confident=confident)


def views_of(encoder_id: str) -> int:
    """How many views each feature row of `encoder_id` holds side by side (1: one pooled vector)."""
    from tasks.embed.encoders.models import TILE_BOXES, TILE_VIEWS_SUFFIX

    return len(TILE_BOXES) if encoder_id.endswith(TILE_VIEWS_SUFFIX) else 1


class ViewMaxClassifier:
    """A child anywhere: fitted on the views max-pooled into one vector, it scores that vector and each view on
    its own (the whole frame and each quadrant), and keeps the highest score.

    Rows hold `views` vectors side by side (`efficientnet-lite0-tileviews`). A small child at the edge of a photo
    fills a quadrant at twice the size and can score high there where the pooled vector mixes it with the rest
    of the frame; the pooled score stays one of the candidates, so what it caught is still caught. Thresholds
    are chosen on these scores out of fold, like any other score. On the sample it catches a child with a
    balloon beside three adults (seed 3) that the pooled score alone missed (README, "Sample ground truth").
    """

    def __init__(self, inner: Any, views: int):
        self.inner = inner
        self.views = views

    def _by_view(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] % self.views:
            raise ValueError(f"expected rows of {self.views} views side by side, got shape {features.shape}")
        return features.reshape(len(features), self.views, -1)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> ViewMaxClassifier:
        self.inner.fit(self._by_view(features).max(axis=1), labels)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        by_view = self._by_view(features)
        n, views, width = by_view.shape
        candidates = np.concatenate([by_view.max(axis=1, keepdims=True), by_view], axis=1)  # pooled, then views
        scores = self.inner.predict_proba(candidates.reshape(n * (views + 1), width))[:, 1].reshape(n, views + 1)
        best = scores.max(axis=1)
        return np.column_stack([1.0 - best, best])


def new_classifier(seed: int, views: int = 1) -> Any:
    """Scaling, then balanced logistic regression with C chosen by a 3-fold inner cross-validation (ROC AUC);
    for rows of several views, that model inside a `ViewMaxClassifier`."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if views > 1:
        return ViewMaxClassifier(new_classifier(seed), views)
    return make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=list(C_GRID),
            l1_ratios=(0.0,),  # plain L2; scikit-learn 1.9 asks for it explicitly
            use_legacy_attributes=False,
            cv=3,
            scoring="roc_auc",
            class_weight="balanced",
            max_iter=1000,
            random_state=seed,
        ),
    )


def out_of_fold_scores(
    features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, views: int = 1
) -> np.ndarray:
    """Each image's score from a model fitted on the other folds (stratified; one row per image)."""
    from sklearn.model_selection import StratifiedKFold

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels).astype(int)
    scores = np.zeros(len(labels))
    for train, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        model = new_classifier(seed, views).fit(features[train], labels[train])
        scores[held_out] = model.predict_proba(features[held_out])[:, 1]
    return scores


class ChildImageDetector:
    """A fitted classifier, the image encoder whose features it reads, and its two thresholds."""

    def __init__(self, model: Any, encoder_id: str, thresholds: Thresholds):
        self.model = model
        self.encoder_id = encoder_id
        self.thresholds = thresholds

    def scores(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        return self.model.predict_proba(np.asarray(features, dtype=np.float64))[:, 1]

    def save(self, path: Path) -> Path:
        import joblib

        from tasks.workspace import atomic_path

        state = {"model": self.model, "encoder_id": self.encoder_id, "thresholds": self.thresholds.__dict__}
        with atomic_path(Path(path)) as tmp:
            joblib.dump(state, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ChildImageDetector:
        import joblib

        from tasks.safety.tuned_detector import TUNED_DIR_NAME, add_search_dir, is_tuned

        state = joblib.load(Path(path))
        if is_tuned(state["encoder_id"]):  # its encoder reads weights saved beside the detector
            add_search_dir(Path(path).parent / TUNED_DIR_NAME)
        return cls(state["model"], state["encoder_id"], Thresholds(**state["thresholds"]))


@dataclass(frozen=True)
class DetectorFit:
    detector: ChildImageDetector
    oof_scores: np.ndarray  # aligned with the labelled images the detector was fitted on
    labels: np.ndarray

    def at(self, threshold: float) -> OperatingPoint:
        return operating_point(self.oof_scores, self.labels, threshold)


def fit_child_detector(
    features: np.ndarray, labels: np.ndarray, encoder_id: str, params: DetectorParams | None = None
) -> DetectorFit:
    """Out-of-fold scores -> thresholds; then the final model on every labelled image."""
    params = params or DetectorParams()
    labels = np.asarray(labels).astype(int)
    positives, negatives = int(labels.sum()), int((1 - labels).sum())
    if min(positives, negatives) < params.folds:
        raise ValueError(
            f"cannot train the child-image detector: {positives} child and {negatives} other labelled images; "
            f"need at least {params.folds} of each"
        )
    views = views_of(encoder_id)
    oof = out_of_fold_scores(features, labels, params.folds, params.seed, views)
    model = new_classifier(params.seed, views).fit(np.asarray(features, dtype=np.float64), labels)
    return DetectorFit(ChildImageDetector(model, encoder_id, choose_thresholds(oof, labels, params)), oof, labels)
