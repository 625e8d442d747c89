"""Fitting and evaluating every model on the same features, one metrics table, choosing the best."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tasks.training.data import EvalData, RetrievalSet
from tasks.training.metrics import kendall_tau_c, random_scores, regression_metrics, retrieval_metrics
from tasks.training.models import PairModel, TrainingData, model_classes

LOWER_IS_BETTER = {"rmse", "mae"}
DEFAULT_MODELS = ("ridge", "xgboost", "study_mlp", "two_tower")


def _retrieval_rows(prefix: str, scores: np.ndarray, rs: RetrievalSet, mask: np.ndarray | None = None) -> dict:
    if mask is not None:
        scores, relevant = scores[mask], rs.relevant[mask]
    else:
        relevant = rs.relevant
    return {f"{prefix}{k}": v for k, v in retrieval_metrics(scores, relevant).items()}


def metrics_from_scores(
    val_pred: np.ndarray, eval_data: EvalData, val_scores: np.ndarray, test_scores: np.ndarray | None
) -> dict[str, float]:
    row = regression_metrics(val_pred, eval_data.val.target)
    row["tau_c"] = kendall_tau_c(val_pred, eval_data.val_expert)
    row |= _retrieval_rows("val_", val_scores, eval_data.val_retrieval)
    if test_scores is not None and eval_data.test_retrieval is not None:
        rs = eval_data.test_retrieval
        row |= _retrieval_rows("", test_scores, rs)
        row |= _retrieval_rows("safe_", test_scores, rs, rs.safe)
    return row


def evaluate_model(model: PairModel, eval_data: EvalData) -> dict[str, float]:
    val_pred = model.predict(eval_data.val.text, eval_data.val.image)
    vr = eval_data.val_retrieval
    val_scores = model.score_matrix(vr.text, vr.image)
    test_scores = None
    if eval_data.test_retrieval is not None:
        tr = eval_data.test_retrieval
        test_scores = model.score_matrix(tr.text, tr.image)
    return metrics_from_scores(val_pred, eval_data, val_scores, test_scores)


def baseline_metrics(train: TrainingData, eval_data: EvalData, seed: int) -> dict[str, dict[str, float]]:
    """Reference rows: a constant predictor (the training mean) and a random ranking."""
    vr, tr = eval_data.val_retrieval, eval_data.test_retrieval
    n_val = len(eval_data.val.target)
    constant = np.full(n_val, float(train.target.mean()), dtype=np.float32)
    rows = {
        "constant": metrics_from_scores(
            constant,
            eval_data,
            np.zeros((len(vr), len(vr.image))),
            None if tr is None else np.zeros((len(tr), len(tr.image))),
        )
    }
    rng_pred = np.random.default_rng(seed).random(n_val).astype(np.float32)
    rows["random"] = metrics_from_scores(
        rng_pred,
        eval_data,
        random_scores(len(vr), len(vr.image), seed),
        None if tr is None else random_scores(len(tr), len(tr.image), seed + 1),
    )
    return rows


@dataclass
class TrainingOutcome:
    models: dict[str, PairModel]
    metrics: pd.DataFrame  # one row per model (and baseline), one column per metric
    fit_seconds: dict[str, float] = field(default_factory=dict)
    best: str = ""
    primary_metric: str = ""


def better(metric: str, a: float, b: float) -> bool:
    """Is value a strictly better than b on this metric?"""
    if np.isnan(b):
        return not np.isnan(a)
    return a < b if metric in LOWER_IS_BETTER else a > b


def select_best(metrics: pd.DataFrame, primary: str, candidates: list[str]) -> str:
    if primary not in metrics.columns:
        raise ValueError(f"primary metric {primary!r} is not one of {sorted(metrics.columns)}")
    values = metrics.loc[candidates, primary]
    return str(values.idxmin() if primary in LOWER_IS_BETTER else values.idxmax())


def train_and_evaluate(
    train: TrainingData,
    eval_data: EvalData,
    kinds: tuple[str, ...] = DEFAULT_MODELS,
    seed: int = 0,
    primary_metric: str = "val_mrr",
    model_options: dict[str, dict] | None = None,
) -> TrainingOutcome:
    classes = model_classes()
    unknown = [k for k in kinds if k not in classes]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(classes)}")
    models, rows, seconds = {}, {}, {}
    for kind in kinds:
        started = time.perf_counter()
        model = classes[kind](**(model_options or {}).get(kind, {})).fit(train, seed)
        seconds[kind] = time.perf_counter() - started
        models[kind] = model
        rows[kind] = evaluate_model(model, eval_data)
    rows |= baseline_metrics(train, eval_data, seed)
    metrics = pd.DataFrame.from_dict(rows, orient="index")
    best = select_best(metrics, primary_metric, list(kinds))
    return TrainingOutcome(models, metrics, seconds, best, primary_metric)
