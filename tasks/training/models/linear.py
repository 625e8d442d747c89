"""Ridge regression on the study's concatenated features: the linear baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tasks.training.models.base import TrainingData, concat_features, pairwise_score_matrix, write_kind


class RidgeModel:
    """A linear score is additive in text and image, so it cannot rank images per query: a floor, not a contender."""

    kind = "ridge"

    def __init__(self, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)):
        self.alphas = alphas
        self.pipeline: Any = None  # a fitted sklearn Pipeline after fit()

    def fit(self, data: TrainingData, seed: int) -> RidgeModel:
        self.pipeline = make_pipeline(StandardScaler(), RidgeCV(alphas=self.alphas))
        self.pipeline.fit(concat_features(data.text, data.image), data.target)
        return self

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return np.clip(self.pipeline.predict(concat_features(text, image)), 0.0, 1.0).astype(np.float32)

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return pairwise_score_matrix(self, text, image)

    def save(self, directory: Path) -> None:
        joblib.dump(self.pipeline, Path(directory) / "ridge.joblib")
        write_kind(directory, self.kind)

    @classmethod
    def load(cls, directory: Path) -> RidgeModel:
        model = cls()
        model.pipeline = joblib.load(Path(directory) / "ridge.joblib")
        return model
