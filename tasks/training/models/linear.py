"""Ridge regression on the study's concatenated features: the linear baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tasks.training.models.base import TrainingData, concat_features, pairwise_score_matrix, write_kind


class GramRidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with its penalty chosen by leave-one-out error, as scikit-learn's `RidgeCV` does (same
    criterion, same choice among `alphas`, the intercept unpenalised), computed from the features' Gram matrix.

    With many more rows than features (16,000 pairs x 1,664 features on practicum-dev) `RidgeCV` decomposes the
    whole design matrix, 16-18 s on one thread here. The Gram matrix, its eigenvectors and the rows projected on
    them take 3-4 s: every penalty then costs a few products of length n (README, "Where a run's time goes").

    Leave-one-out residual of row i: (y_i - fitted_i) / (1 - h_ii), with the hat diagonal
    h_ii = 1/n + sum_j (x_i . v_j)^2 / (lambda_j + alpha) over the eigenpairs (lambda_j, v_j) of the centred Gram.
    """

    def __init__(self, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)):
        self.alphas = alphas

    def fit(self, X: np.ndarray, y: np.ndarray) -> GramRidgeCV:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(X) != len(y) or len(X) < 2:
            raise ValueError(f"need at least 2 rows and one target a row, got {len(X)} rows and {len(y)} targets")
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive, not {self.alphas}")
        x_mean, y_mean = X.mean(axis=0, dtype=np.float64), float(y.mean())
        centred = X - x_mean.astype(np.float32)
        yc = y - y_mean
        # float32 products (the features are float32 already), float64 decomposition and sums
        eigenvalues, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        projected = (centred @ vectors.astype(np.float32)).astype(np.float64)  # x_i . v_j
        along = projected.T @ yc  # v_j . X'y
        squares = projected**2
        errors = []
        for alpha in self.alphas:
            shrink = 1.0 / (eigenvalues + alpha)
            fitted = projected @ (shrink * along)
            hat = 1.0 / len(y) + squares @ shrink
            errors.append(float(np.mean(((yc - fitted) / (1.0 - hat)) ** 2)))
        self.cv_errors_ = np.array(errors)
        self.alpha_ = float(self.alphas[int(np.argmin(self.cv_errors_))])
        self.coef_ = vectors @ (along / (eigenvalues + self.alpha_))
        self.intercept_ = y_mean - float(x_mean @ self.coef_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_


class RidgeModel:
    """A linear score is additive in text and image, so it cannot rank images per query: a floor, not a contender."""

    kind = "ridge"

    def __init__(self, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)):
        self.alphas = alphas
        self.pipeline: Any = None  # a fitted sklearn Pipeline after fit()

    def fit(self, data: TrainingData, seed: int) -> RidgeModel:
        self.pipeline = make_pipeline(StandardScaler(), GramRidgeCV(alphas=self.alphas))
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
