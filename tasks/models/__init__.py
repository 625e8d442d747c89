"""Relevance models: each maps (text embedding, image embedding) pairs to a score in [0, 1]."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.models.base import PairModel, TrainingData

__all__ = ["PairModel", "TrainingData", "model_classes", "load_model"]


def model_classes() -> dict[str, type]:
    """Every model kind the training stage can fit, by name (imports are deferred: torch and xgboost are heavy)."""
    from tasks.models.linear import RidgeModel
    from tasks.models.mlp import StudyMLP
    from tasks.models.two_tower import TwoTowerModel
    from tasks.models.xgb import XGBoostModel

    return {cls.kind: cls for cls in (RidgeModel, XGBoostModel, StudyMLP, TwoTowerModel)}


def load_model(directory: Path) -> PairModel:
    kind = json.loads((Path(directory) / "model.json").read_text())["kind"]
    return model_classes()[kind].load(Path(directory))
