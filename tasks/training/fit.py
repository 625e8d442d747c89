"""Fitting and evaluating every model on the same features, one metrics table, choosing the best."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.training.data import EvalData, RetrievalSet
from tasks.training.metrics import (
    kendall_tau_c,
    random_scores,
    recall_curve,
    regression_metrics,
    retrieval_metrics,
)
from tasks.training.models import MODEL_KINDS, PairModel, TrainingData, model_classes

log = logging.getLogger(__name__)

LOWER_IS_BETTER = {"rmse", "mae"}


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


@dataclass(frozen=True)
class Evaluation:
    """A model on this run's evaluation data: its metrics, and what the report plots from the same scores."""

    metrics: dict[str, float]
    recall_curve: list[float]  # Recall@1..10 on the test queries (validation ones when there is no test set)
    val_pred: np.ndarray  # predicted score of each validation pair


def curve_set(eval_data: EvalData) -> tuple[str, int]:
    """Which queries the recall curves use, and how many images they are searched against."""
    if eval_data.test_retrieval is not None:
        return "test", len(eval_data.test_retrieval.image)
    return "validation", len(eval_data.val_retrieval.image)


def evaluate(model: PairModel, eval_data: EvalData) -> Evaluation:
    val_pred = model.predict(eval_data.val.text, eval_data.val.image)
    vr = eval_data.val_retrieval
    val_scores = model.score_matrix(vr.text, vr.image)
    test_scores = None
    curve = recall_curve(val_scores, vr.relevant)
    if eval_data.test_retrieval is not None:
        tr = eval_data.test_retrieval
        test_scores = model.score_matrix(tr.text, tr.image)
        curve = recall_curve(test_scores, tr.relevant)
    metrics = metrics_from_scores(val_pred, eval_data, val_scores, test_scores)
    return Evaluation(metrics, curve, np.asarray(val_pred, dtype=float))


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


@dataclass(frozen=True)
class FittedModel:
    """One model of a run: what it is, how long fitting took, every metric on this run's evaluation data."""

    kind: str
    model: PairModel
    seconds: float
    evaluation: Evaluation

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.metrics


def fit_and_evaluate(kind: str, train: TrainingData, eval_data: EvalData, seed: int, options: dict) -> FittedModel:
    """Fit one model kind with `options` (its constructor arguments) and evaluate it."""
    classes = model_classes()
    if kind not in classes:
        raise ValueError(f"unknown model {kind!r}; choose from {sorted(classes)}")
    from threadpoolctl import threadpool_limits

    # one thread for BLAS and OpenMP too (torch models also set their own): the same arithmetic wherever the fit
    # runs, in turn here or in a worker process (`fit_side_by_side`). With two BLAS threads here, XGBoost's PCA
    # came out different in the last bits, and its validation MRR moved from 0.228 to 0.210 on practicum-dev.
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        model = classes[kind](**options).fit(train, seed)
        seconds = time.perf_counter() - started
        return FittedModel(kind, model, seconds, evaluate(model, eval_data))


def fit_all(
    kinds: tuple[str, ...],
    train: TrainingData,
    eval_data: EvalData,
    seed: int,
    options: Callable[[str], dict],
    primary_metric: str,
    check: Callable[[FittedModel], None] | None = None,
    workers: int = 1,
) -> list[FittedModel]:
    """Fit and evaluate each kind (`options(kind)` are its constructor arguments), then `check` it.

    With `workers` > 1 the fits run side by side in that many worker processes (`fit_side_by_side`); the models
    and metrics are the same as fitting them in turn here. Logs a line per model, with its seconds and validation
    metric, to the Prefect run's logs inside a run, so a long training stage shows where it is."""
    from tasks.progress import run_logger

    logger = run_logger(log)

    def in_turn() -> Iterator[FittedModel]:
        for n, kind in enumerate(kinds, 1):
            logger.info("fitting %s (%d/%d) on %d pairs", kind, n, len(kinds), len(train.target))
            yield fit_and_evaluate(kind, train, eval_data, seed, options(kind))

    if workers > 1:
        logger.info("fitting %s in %d worker processes on %d pairs", ", ".join(kinds), workers, len(train.target))
    fits = fit_side_by_side(kinds, train, eval_data, seed, options, workers) if workers > 1 else in_turn()
    fitted = []
    for n, model in enumerate(fits, 1):
        if check is not None:
            check(model)
        value = model.metrics.get(primary_metric, float("nan"))
        logger.info(
            "fitted %s (%d/%d) in %.1f s: %s = %.4f", model.kind, n, len(kinds), model.seconds, primary_metric, value
        )
        fitted.append(model)
    return fitted


def _timed(part: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = part()
    return time.perf_counter() - started, result


def _fit_evaluate_save(
    kind: str, options: dict, train: TrainingData, eval_data: EvalData, seed: int, directory: Path
) -> tuple[float, Evaluation]:
    """A whole model fitted and evaluated in a worker process; the model comes back through its own save format."""
    fitted = fit_and_evaluate(kind, train, eval_data, seed, options)
    directory.mkdir(parents=True)
    fitted.model.save(directory)
    return fitted.seconds, fitted.evaluation


def fit_side_by_side(
    kinds: tuple[str, ...],
    train: TrainingData,
    eval_data: EvalData,
    seed: int,
    options: Callable[[str], dict],
    workers: int,
) -> Iterator[FittedModel]:
    """`fit_all` over `workers` single-thread processes (`tasks.parallel.side_by_side`). A model that splits its
    fit (`fit_parts`: the two-tower's members) has each piece trained in a worker and is assembled and evaluated
    here; any other model is fitted, evaluated and saved in a worker and loaded here. The longest pieces go first.
    Each piece is a function of its arguments on one thread, so the models equal those fitted in turn. Yields in
    the order of `kinds`, each as soon as it can."""
    import tempfile

    from threadpoolctl import threadpool_limits

    from tasks.parallel import side_by_side

    classes = model_classes()
    unknown = [kind for kind in kinds if kind not in classes]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {sorted(classes)}")
    jobs: list[tuple[str, tuple[Callable[..., Any], tuple]]] = []  # (kind, (function, args)) pieces
    finishers: dict[str, Callable[[list[Any]], Any]] = {}
    for kind in kinds:
        model = classes[kind](**options(kind))
        if hasattr(model, "fit_parts"):
            parts, finishers[kind] = model.fit_parts(train, seed)
            jobs += [(kind, (_timed, (part,))) for part in parts]
    with tempfile.TemporaryDirectory(prefix="imgsearch-fit-") as tmp:
        folder = Path(tmp)
        jobs += [
            (kind, (_fit_evaluate_save, (kind, options(kind), train, eval_data, seed, folder / kind)))
            for kind in kinds
            if kind not in finishers
        ]
        pieces = {kind: sum(1 for k, _ in jobs if k == kind) for kind in kinds}
        results: dict[str, list[Any]] = {kind: [] for kind in kinds}
        ready: dict[str, FittedModel] = {}
        order = iter(kinds)
        wanted = next(order, None)
        for (kind, _), result in zip(jobs, side_by_side((call for _, call in jobs), workers), strict=True):
            results[kind].append(result)
            if len(results[kind]) < pieces[kind]:
                continue
            if kind in finishers:
                with threadpool_limits(limits=1):  # as `fit_and_evaluate`
                    started = time.perf_counter()
                    model = finishers[kind]([piece for _, piece in results[kind]])
                    seconds = sum(s for s, _ in results[kind]) + time.perf_counter() - started  # compute, as in turn
                    ready[kind] = FittedModel(kind, model, seconds, evaluate(model, eval_data))
            else:
                seconds, evaluation = results[kind][0]
                ready[kind] = FittedModel(kind, classes[kind].load(folder / kind), seconds, evaluation)
            while wanted in ready:
                yield ready.pop(wanted)
                wanted = next(order, None)


@dataclass
class TrainingOutcome:
    models: dict[str, PairModel]
    metrics: pd.DataFrame  # one row per model (and baseline), one column per metric
    fit_seconds: dict[str, float] = field(default_factory=dict)
    best: str = ""
    primary_metric: str = ""
    recall_curves: dict[str, list[float]] = field(default_factory=dict)  # model -> Recall@1..10
    val_predictions: dict[str, np.ndarray] = field(default_factory=dict)  # model -> score per validation pair

    @classmethod
    def from_fitted(
        cls, fitted: list[FittedModel], baselines: dict[str, dict[str, float]], primary_metric: str
    ) -> TrainingOutcome:
        """One metrics table of the fitted models and the baselines; the best fitted model on `primary_metric`."""
        rows = {f.kind: f.metrics for f in fitted} | baselines
        metrics = pd.DataFrame.from_dict(rows, orient="index")
        best = select_best(metrics, primary_metric, [f.kind for f in fitted])
        return cls(
            {f.kind: f.model for f in fitted},
            metrics,
            {f.kind: f.seconds for f in fitted},
            best,
            primary_metric,
            {f.kind: f.evaluation.recall_curve for f in fitted},
            {f.kind: f.evaluation.val_pred for f in fitted},
        )


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
    kinds: tuple[str, ...] = MODEL_KINDS,
    seed: int = 0,
    primary_metric: str = "val_mrr",
    model_options: dict[str, dict] | None = None,
    workers: int = 1,
) -> TrainingOutcome:
    """Fit and evaluate every kind, then add the baselines (the pipeline runs the same steps as its own task)."""
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(MODEL_KINDS)}")
    options = model_options or {}
    fitted = fit_all(kinds, train, eval_data, seed, lambda kind: options.get(kind, {}), primary_metric, workers=workers)
    return TrainingOutcome.from_fitted(fitted, baseline_metrics(train, eval_data, seed), primary_metric)


@dataclass(frozen=True)
class ChampionMeasure:
    """The champion as this run sees it: re-measured on this run's evaluation data when its features allow."""

    record: Any  # the registry's ModelRecord
    metrics: dict[str, float] | None  # None: other encoders, or it would not load; only its stored metrics compare
    recall_curve: list[float] | None = None  # Recall@1..10 on this run's data, when re-measured

    def value(self, metric: str) -> float | None:
        return None if self.metrics is None else self.metrics.get(metric)

    def table_row(self) -> dict[str, float]:
        return dict(self.record.metrics) if self.metrics is None else self.metrics


def measure_champion(
    registry: Any, eval_data: EvalData, text_encoder: str, image_encoder: str
) -> ChampionMeasure | None:
    """Evaluate the registry's champion once on this run's data, if there is one and it uses the same encoders."""
    record = registry.champion()
    if record is None:
        return None
    if (record.text_encoder, record.image_encoder) != (text_encoder, image_encoder):
        return ChampionMeasure(record, None)
    try:
        evaluation = evaluate(registry.load(record.version), eval_data)
        return ChampionMeasure(record, evaluation.metrics, evaluation.recall_curve)
    except Exception:  # an unloadable champion must not block a new model; stored metrics decide
        return ChampionMeasure(record, None)
