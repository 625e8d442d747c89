"""Relevance models: each maps (text embedding, image embedding) pairs to a score in [0, 1]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.training.models.base import PairModel, TrainingData

__all__ = ["MODEL_KINDS", "PairModel", "TrainingData", "model_classes", "load_model"]

# The model kinds the training stage can fit, in the order a run fits them. Named here, not read from the
# classes, so that validating parameters does not import torch and xgboost.
MODEL_KINDS: tuple[str, ...] = ("ridge", "xgboost", "study_mlp", "two_tower")


def model_classes() -> dict[str, Any]:
    """Every model class, by its kind (imports are deferred: torch and xgboost are heavy)."""
    from tasks.training.models.linear import RidgeModel
    from tasks.training.models.mlp import StudyMLP
    from tasks.training.models.two_tower import TwoTowerModel
    from tasks.training.models.xgb import XGBoostModel

    classes = {cls.kind: cls for cls in (RidgeModel, XGBoostModel, StudyMLP, TwoTowerModel)}
    assert tuple(classes) == MODEL_KINDS, f"MODEL_KINDS {MODEL_KINDS} disagrees with the classes {tuple(classes)}"
    return classes


def load_model(directory: Path) -> PairModel:
    kind = json.loads((Path(directory) / "model.json").read_text())["kind"]
    return model_classes()[kind].load(Path(directory))
