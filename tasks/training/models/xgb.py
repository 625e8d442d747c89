"""XGBoost on the study's concatenated features, with a seeded random search over group-aware folds.

The embeddings are first reduced by PCA (per modality, fitted on the training rows): trees split
one feature at a time, so 1664 raw dimensions cost >10x the time for no measured gain. One thread
by default: on a busy 2-core machine two OpenMP threads made a fit 2.7x slower (109 s vs 40 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from tasks.training.models.base import TrainingData, concat_features, pairwise_score_matrix, write_kind

SEARCH_SPACE: dict[str, list[float]] = {
    "max_depth": [3, 4, 6],
    "learning_rate": [0.03, 0.06, 0.1],
    "n_estimators": [100, 200],
    "subsample": [0.7, 0.9],
    "colsample_bytree": [0.2, 0.4],
    "min_child_weight": [1, 5],
    "reg_lambda": [1.0, 5.0],
}


class XGBoostModel:
    kind = "xgboost"

    def __init__(self, n_search: int = 6, n_folds: int = 3, n_jobs: int = 1, components: int = 48):
        self.n_search = n_search
        self.n_folds = n_folds
        self.n_jobs = n_jobs
        self.components = components
        self.text_pca: Any = None  # fitted PCA, booster and so on after fit()
        self.image_pca: Any = None
        self.booster: Any = None
        self.best_params: dict = {}
        self.search_results: list[dict] = []

    def _regressor(self, params: dict, seed: int):
        from xgboost import XGBRegressor

        return XGBRegressor(
            objective="reg:squarederror",
            tree_method="hist",
            max_bin=64,
            n_jobs=self.n_jobs,
            random_state=seed,
            **params,
        )

    def _features(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return concat_features(self.text_pca.transform(text), self.image_pca.transform(image))

    def fit(self, data: TrainingData, seed: int) -> XGBoostModel:
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(seed)
        self.text_pca = PCA(n_components=min(self.components, *data.text.shape), random_state=seed).fit(data.text)
        self.image_pca = PCA(n_components=min(self.components, *data.image.shape), random_state=seed).fit(data.image)
        features = self._features(data.text, data.image)
        candidates = [
            {k: values[rng.integers(len(values))] for k, values in SEARCH_SPACE.items()} for _ in range(self.n_search)
        ]
        folds = list(GroupKFold(n_splits=self.n_folds).split(features, data.target, data.groups))
        self.search_results = []
        for params in candidates:
            errors = []
            for train_idx, val_idx in folds:
                model = self._regressor(params, seed).fit(features[train_idx], data.target[train_idx])
                pred = np.clip(model.predict(features[val_idx]), 0, 1)
                errors.append(float(np.sqrt(np.mean((pred - data.target[val_idx]) ** 2))))
            self.search_results.append({"params": params, "cv_rmse": float(np.mean(errors))})
        best = min(self.search_results, key=lambda r: r["cv_rmse"])
        self.best_params = {k: (v.item() if hasattr(v, "item") else v) for k, v in best["params"].items()}
        self.booster = self._regressor(self.best_params, seed).fit(features, data.target)
        return self

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return np.clip(self.booster.predict(self._features(text, image)), 0.0, 1.0).astype(np.float32)

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return pairwise_score_matrix(self, text, image)

    def save(self, directory: Path) -> None:
        import joblib

        self.booster.save_model(Path(directory) / "xgboost.json")
        joblib.dump({"text": self.text_pca, "image": self.image_pca}, Path(directory) / "pca.joblib")
        (Path(directory) / "search.json").write_text(
            json.dumps({"best_params": self.best_params, "results": self.search_results}, indent=2, default=str)
        )
        write_kind(directory, self.kind)

    @classmethod
    def load(cls, directory: Path) -> XGBoostModel:
        import joblib
        from xgboost import XGBRegressor

        model = cls()
        pca = joblib.load(Path(directory) / "pca.joblib")
        model.text_pca, model.image_pca = pca["text"], pca["image"]
        model.booster = XGBRegressor()
        model.booster.load_model(Path(directory) / "xgboost.json")
        model.best_params = json.loads((Path(directory) / "search.json").read_text())["best_params"]
        return model
