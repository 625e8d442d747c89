"""Prefect tasks of the training stage, one step each in the dashboard:
`fit-and-compare` (every model, the baselines and the champion on this run's data), `register-and-promote`,
`publish-training-report` (HTML files and artifacts)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from data_contracts.predictions import check_predictions
from tasks.training.data import EvalData, SplitSummary
from tasks.training.fit import (
    ChampionMeasure,
    FittedModel,
    TrainingOutcome,
    baseline_metrics,
    curve_set,
    fit_all,
    measure_champion,
)
from tasks.training.inputs import TrainInputs
from tasks.training.registry import ModelRecord, ModelRegistry, PromotionDecision
from tasks.training.report import (
    HeadToHead,
    calibration_figure,
    metrics_html,
    metrics_markdown,
    recall_curves_figure,
    run_notes,
)
from tasks.workspace import Workspace, write_text_atomic


@dataclass(frozen=True)
class Comparison:
    """Every model of the run against the baselines and, when there is one, the champion."""

    outcome: TrainingOutcome
    split: SplitSummary
    champion: ChampionMeasure | None
    seconds: float  # splitting, fitting and evaluating
    val_expert: np.ndarray | None = None  # mean expert score of each validation pair (NaN: no expert)
    curve_set: tuple[str, int] = ("test", 0)  # the recall curves' queries, and how many images they search

    @property
    def table(self) -> pd.DataFrame:
        """The metrics table with the champion's row (re-measured, or as stored when its features differ)."""
        if self.champion is None:
            return self.outcome.metrics
        table = self.outcome.metrics.copy()
        table.loc[f"champion ({self.champion.record.kind})"] = pd.Series(self.champion.table_row())
        return table


@dataclass(frozen=True)
class Registration:
    record: ModelRecord
    decision: PromotionDecision


@dataclass(frozen=True)
class TrainReport:
    best: str
    version: str
    promoted: bool
    reason: str
    champion: str | None
    primary_metric: str
    metrics: dict[str, dict[str, float | None]]  # model -> metric -> value (None where not measured)
    fit_seconds: dict[str, float]
    split: SplitSummary
    report_path: str
    train_seconds: float  # the fit-and-compare step: splitting, fitting and evaluating

    @property
    def best_metrics(self) -> dict[str, float | None]:
        return self.metrics[self.best]


def check_validation_predictions(fitted: FittedModel, eval_data: EvalData) -> None:
    frame = eval_data.val_pairs[["image", "query_id"]].copy()
    frame["score"] = fitted.model.predict(eval_data.val.text, eval_data.val.image)
    check_predictions(frame, len(eval_data.val_pairs), f"validation predictions of {fitted.kind}")


@task(name="fit-and-compare", cache_policy=NO_CACHE)
def fit_and_compare(inputs: TrainInputs, workspace: Workspace) -> Comparison:
    """Split by image, fit and check every model kind, add the baselines and the champion measured once."""
    logger = get_run_logger()
    started = time.perf_counter()
    params, metric = inputs.params, inputs.params.primary_metric
    train, eval_data, split = inputs.datasets()
    logger.info("split: %s", split)
    fitted = fit_all(
        tuple(params.models),
        train,
        eval_data,
        inputs.seed,
        params.model_options,
        metric,
        check=lambda model: check_validation_predictions(model, eval_data),
        workers=params.workers_for(len(train.target)),
    )
    outcome = TrainingOutcome.from_fitted(fitted, baseline_metrics(train, eval_data, inputs.seed), metric)
    champion = measure_champion(ModelRegistry(workspace), eval_data, inputs.text_encoder, inputs.image_encoder)
    if champion is not None:
        measured = champion.value(metric)
        logger.info(
            "champion %s on this run's data: %s",
            champion.record.version,
            f"{metric} = {measured:.4f}" if measured is not None else "other encoders; its stored metrics compare",
        )
    return Comparison(
        outcome, split, champion, time.perf_counter() - started, eval_data.val_expert, curve_set(eval_data)
    )


@task(name="register-and-promote", cache_policy=NO_CACHE)
def register_and_promote(inputs: TrainInputs, comparison: Comparison, workspace: Workspace) -> Registration:
    """Register the run's best model; make it the champion only if it beats the champion (or promotion is forced)."""
    outcome, params = comparison.outcome, inputs.params
    registry = ModelRegistry(workspace)
    record = registry.register(
        outcome.models[outcome.best],
        text_encoder=inputs.text_encoder,
        image_encoder=inputs.image_encoder,
        data_hash=inputs.data_hash,
        primary_metric=params.primary_metric,
        metrics=outcome.metrics.loc[outcome.best].dropna().to_dict(),
        params={**params.model_dump(), "seed": inputs.seed, "split": asdict(comparison.split)},
        comparison_markdown=metrics_markdown(comparison.table),
    )
    champion_value = comparison.champion.value(params.primary_metric) if comparison.champion else None
    decision = registry.promote_if_better(record, champion_value=champion_value, force=params.force_promote)
    get_run_logger().info("model %s: %s", record.version, decision.reason)
    return Registration(record, decision)


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def training_figures(comparison: Comparison, version: str, out_dir: Path) -> list[tuple[str, str]]:
    """The report's PNGs beside it (named by version): recall curves of every model (and the champion, when
    re-measured) and the best model's predictions against the experts. Returns (file name, caption) pairs."""
    outcome = comparison.outcome
    queries, n_images = comparison.curve_set
    curves = dict(outcome.recall_curves)
    if comparison.champion is not None and comparison.champion.recall_curve is not None:
        curves[f"champion {comparison.champion.record.version}"] = comparison.champion.recall_curve
    figures = []
    if curves:
        recall = recall_curves_figure(curves, n_images, queries, out_dir / f"{version}-recall.png")
        figures.append(
            (
                recall.name,
                f"Recall@k: the share of {queries} queries whose own image is among the first k of "
                f"{n_images}; higher is better. The dotted line is chance.",
            )
        )
    pred = outcome.val_predictions.get(outcome.best)
    if pred is not None and comparison.val_expert is not None and (~np.isnan(comparison.val_expert)).any():
        calibration = calibration_figure(
            pred, comparison.val_expert, outcome.best, out_dir / f"{version}-calibration.png"
        )
        figures.append(
            (
                calibration.name,
                f"Predicted vs expert for the best model ({outcome.best}) on expert-rated validation pairs: "
                "dots are pairs (jittered sideways), red is the mean prediction per expert score. "
                "A good scorer rises from left to right; on the dotted line it would also be calibrated.",
            )
        )
    return figures


def head_to_head(comparison: Comparison, registration: Registration) -> HeadToHead | None:
    """The run's best model beside the champion it had to beat, when the registry had one."""
    champion = comparison.champion
    if champion is None:
        return None
    outcome, decision = comparison.outcome, registration.decision
    how = (
        "re-measured on this run's data"
        if champion.metrics is not None
        else "as stored when it was trained (other encoders, so not re-measured)"
    )
    verdict = "promoted" if decision.promoted else "not promoted"
    return HeadToHead(
        challenger=f"{outcome.best} ({registration.record.version})",
        champion=f"{champion.record.kind} ({champion.record.version})",
        how=f"The champion's metrics are {how}.",
        challenger_metrics={str(k): float(v) for k, v in outcome.metrics.loc[outcome.best].to_dict().items()},
        champion_metrics={k: float(v) for k, v in champion.table_row().items()},
        decision=f"Decision on {outcome.primary_metric}: {verdict} — {decision.reason}",
    )


def training_page(comparison: Comparison, registration: Registration, notes: list[str], out_dir: Path) -> str:
    """The report's HTML; its plots are written into `out_dir`, where the page goes."""
    return metrics_html(
        comparison.table,
        f"Training run {registration.record.version}",
        notes,
        best=comparison.outcome.best,
        figures=training_figures(comparison, registration.record.version, out_dir),
        head_to_head=head_to_head(comparison, registration),
    )


@task(name="publish-training-report", cache_policy=NO_CACHE)
def publish_training_report(comparison: Comparison, registration: Registration, workspace: Workspace) -> TrainReport:
    """Write the comparison as HTML (this version's and `latest.html`) and publish it as two artifacts."""
    outcome, record, decision = comparison.outcome, registration.record, registration.decision
    table = comparison.table
    notes = run_notes(outcome, comparison.split, record.version, decision)
    page = training_page(comparison, registration, notes, workspace.reports / "training")
    report = write_text_atomic(workspace.reports / "training" / f"{record.version}.html", page)
    write_text_atomic(workspace.reports / "training" / "latest.html", page)
    create_markdown_artifact(
        key="model-comparison",
        markdown="## Model comparison\n\n"
        + "".join(f"- {n}\n" for n in notes)
        + "\n"
        + metrics_markdown(table)
        + f"\n\nHTML report: `{report}`\n",
        description="Every model of this run against the baselines and the champion",
    )
    metrics = {str(name): {str(k): _plain(v) for k, v in row.items()} for name, row in table.iterrows()}
    create_table_artifact(
        key="model-metrics",
        table=[
            {"model": name, **{k: None if v is None else round(v, 4) for k, v in row.items()}}
            for name, row in metrics.items()
        ],
        description="Metrics per model",
    )
    get_run_logger().info("training report: %s", report)
    return TrainReport(
        best=outcome.best,
        version=record.version,
        promoted=decision.promoted,
        reason=decision.reason,
        champion=decision.champion,
        primary_metric=outcome.primary_metric,
        metrics=metrics,
        fit_seconds=outcome.fit_seconds,
        split=comparison.split,
        report_path=str(report),
        train_seconds=comparison.seconds,
    )
