"""The interface every relevance model implements and the pieces the models share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TrainingData:
    """Aligned arrays for one split: row i is the pair (text[i], image[i]) with target[i] in [0, 1].

    `groups` holds the image name of each row (for group-aware folds); `positives_*` are (caption,
    own image) pairs, which ranking models may use for a contrastive loss, with `positives_groups`
    the image name of each.
    """

    text: np.ndarray
    image: np.ndarray
    target: np.ndarray
    groups: np.ndarray
    positives_text: np.ndarray | None = None
    positives_image: np.ndarray | None = None
    positives_groups: np.ndarray | None = None
    weights: np.ndarray | None = None  # per-row loss weight (expert-rated pairs can count more)
    expert: np.ndarray | None = None  # True where experts rated the pair (the target is then their mean score)

    def __post_init__(self) -> None:
        n = len(self.target)
        if not (len(self.text) == len(self.image) == len(self.groups) == n):
            raise ValueError(f"misaligned training arrays: text {len(self.text)}, image {len(self.image)}, target {n}")


@runtime_checkable
class PairModel(Protocol):
    kind: str

    def fit(self, data: TrainingData, seed: int) -> PairModel: ...

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Scores in [0, 1] for aligned rows of text and image embeddings."""
        ...

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Scores in [0, 1] for every (query, image) combination: shape (len(text), len(image))."""
        ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> PairModel: ...


def pairwise_score_matrix(model: PairModel, text: np.ndarray, image: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """Score every query against every image with a pairwise model, in bounded-memory chunks."""
    n_q, n_i = len(text), len(image)
    out = np.empty((n_q, n_i), dtype=np.float32)
    rows_per_chunk = max(1, chunk // max(1, n_i))
    for start in range(0, n_q, rows_per_chunk):
        stop = min(n_q, start + rows_per_chunk)
        t = np.repeat(text[start:stop], n_i, axis=0)
        i = np.tile(image, (stop - start, 1))
        out[start:stop] = model.predict(t, i).reshape(stop - start, n_i)
    return out


def concat_features(text: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The original study's features: text and image embeddings side by side."""
    return np.hstack([text, image]).astype(np.float32)


def write_kind(directory: Path, kind: str, extra: dict | None = None) -> None:
    (Path(directory) / "model.json").write_text(json.dumps({"kind": kind, **(extra or {})}, indent=2))
