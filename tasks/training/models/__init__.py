"""Relevance models: each maps (text embedding, image embedding) pairs to a score in [0, 1]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.training.models.base import PairModel, TrainingData

__all__ = ["PairModel", "TrainingData", "model_classes", "load_model"]


def model_classes() -> dict[str, Any]:
    """Every model kind the training stage can fit, by name (imports are deferred: torch and xgboost are heavy)."""
    from tasks.training.models.linear import RidgeModel
    from tasks.training.models.mlp import StudyMLP
    from tasks.training.models.two_tower import TwoTowerModel
    from tasks.training.models.xgb import XGBoostModel

    return {cls.kind: cls for cls in (RidgeModel, XGBoostModel, StudyMLP, TwoTowerModel)}


def load_model(directory: Path) -> PairModel:
    kind = json.loads((Path(directory) / "model.json").read_text())["kind"]
    return model_classes()[kind].load(Path(directory))
