"""Prefect tasks of the training stage, one step each in the dashboard:
`fit-and-compare` (every model, the baselines and the champion on this run's data), `register-and-promote`,
`publish-training-report` (HTML files and artifacts)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

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
    fit_all,
    measure_champion,
)
from tasks.training.inputs import TrainInputs
from tasks.training.registry import ModelRecord, ModelRegistry, PromotionDecision
from tasks.training.report import metrics_html, metrics_markdown, run_notes
from tasks.workspace import Workspace, write_text_atomic


@dataclass(frozen=True)
class Comparison:
    """Every model of the run against the baselines and, when there is one, the champion."""

    outcome: TrainingOutcome
    split: SplitSummary
    champion: ChampionMeasure | None
    seconds: float  # splitting, fitting and evaluating

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
    return Comparison(outcome, split, champion, time.perf_counter() - started)


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


@task(name="publish-training-report", cache_policy=NO_CACHE)
def publish_training_report(comparison: Comparison, registration: Registration, workspace: Workspace) -> TrainReport:
    """Write the comparison as HTML (this version's and `latest.html`) and publish it as two artifacts."""
    outcome, record, decision = comparison.outcome, registration.record, registration.decision
    table = comparison.table
    notes = run_notes(outcome, comparison.split, record.version, decision)
    page = metrics_html(table, f"Training run {record.version}", notes)
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
