"""Prefect tasks for training: fit and evaluate every model, check predictions, register, promote."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from data_contracts.predictions import check_predictions
from tasks.ingest.tables import caption_image
from tasks.training.data import EmbeddingLookup, EvalData, build_datasets
from tasks.training.fit import DEFAULT_MODELS, evaluate_model, train_and_evaluate
from tasks.training.registry import ModelRegistry
from tasks.training.report import metrics_html, metrics_markdown
from tasks.workspace import Workspace, write_text_atomic

PRIMARY_METRICS = {"val_mrr", "val_r1", "val_r5", "val_r10", "val_ndcg10", "tau_c", "rmse", "mae"}


class TrainParams(BaseModel):
    """What to train and how to choose; the dashboard renders these as a form."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(
        default=list(DEFAULT_MODELS), description="Model kinds to fit: ridge, xgboost, study_mlp, two_tower"
    )
    val_fraction: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Share of training images held out for validation"
    )
    primary_metric: str = Field(
        default="val_mrr", description="Metric that picks the best model and decides promotion (validation only)"
    )
    xgb_search: int = Field(default=6, ge=1, le=50, description="Random-search candidates for XGBoost")
    xgb_folds: int = Field(default=3, ge=2, le=10, description="Group-aware folds for the XGBoost search")
    expert_pair_weight: float = Field(
        default=4.0,
        ge=1.0,
        le=100.0,
        description=(
            "Loss weight of expert-rated pairs in the two-tower model "
            "(measured on practicum-dev: 1 -> tau-c 0.49, 4 -> 0.54)"
        ),
    )
    force_promote: bool = Field(
        default=False, description="Promote the run's best model even if it does not beat the champion"
    )

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in PRIMARY_METRICS:
            raise ValueError(
                f"primary_metric must be one of {sorted(PRIMARY_METRICS)} "
                "(validation metrics only, so the test set stays unseen)"
            )
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        allowed = {"ridge", "xgboost", "study_mlp", "two_tower"}
        unknown = sorted(set(value) - allowed)
        if unknown or not value:
            raise ValueError(f"unknown or no models {unknown}; choose from {sorted(allowed)}")
        return value

    def model_options(self) -> dict[str, dict]:
        return {"xgboost": {"n_search": self.xgb_search, "n_folds": self.xgb_folds}}


@dataclass(frozen=True)
class TrainReport:
    best: str
    version: str
    promoted: bool
    reason: str
    champion: str | None
    primary_metric: str
    metrics: dict  # model -> metric -> value
    fit_seconds: dict
    split: dict
    report_path: str
    train_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def _check_validation_predictions(model, eval_data: EvalData, source: str) -> None:
    frame = eval_data.val_pairs[["image", "query_id"]].copy()
    frame["score"] = model.predict(eval_data.val.text, eval_data.val.image)
    check_predictions(frame, len(eval_data.val_pairs), source)


def _champion_on_current_data(
    registry: ModelRegistry, eval_data: EvalData, text_encoder: str, image_encoder: str, metric: str
):
    """Re-measure the champion on this run's validation data when its features are compatible."""
    champion = registry.champion()
    if champion is None:
        return None, None
    if (champion.text_encoder, champion.image_encoder) != (text_encoder, image_encoder):
        return champion, None  # other features: only its stored value can be compared
    try:
        value = evaluate_model(registry.load(champion.version), eval_data).get(metric)
    except Exception:  # an unloadable champion must not block a new model; stored metrics decide
        return champion, None
    return champion, value


@task(name="train-evaluate-register", cache_policy=NO_CACHE)
def train_evaluate_register(
    pairs: pd.DataFrame,
    captions: pd.DataFrame,
    test_queries: pd.DataFrame,
    test_gallery: list[str],
    text_emb: EmbeddingLookup,
    train_image_emb: EmbeddingLookup,
    test_image_emb: EmbeddingLookup,
    text_encoder: str,
    image_encoder: str,
    data_hash: str,
    params: TrainParams,
    seed: int,
    workspace: Workspace,
) -> TrainReport:
    logger = get_run_logger()
    started = time.perf_counter()
    train, eval_data, split = build_datasets(
        pairs,
        captions,
        text_emb,
        train_image_emb,
        params.val_fraction,
        seed,
        test_queries=test_queries,
        test_gallery=test_gallery,
        test_image_emb=test_image_emb,
        expert_pair_weight=params.expert_pair_weight,
    )
    logger.info("split: %s", split)
    outcome = train_and_evaluate(
        train,
        eval_data,
        kinds=tuple(params.models),
        seed=seed,
        primary_metric=params.primary_metric,
        model_options=params.model_options(),
    )
    for kind, model in outcome.models.items():
        _check_validation_predictions(model, eval_data, f"validation predictions of {kind}")

    registry = ModelRegistry(workspace)
    champion, champion_value = _champion_on_current_data(
        registry, eval_data, text_encoder, image_encoder, params.primary_metric
    )
    if champion is not None:
        row = (
            evaluate_model(registry.load(champion.version), eval_data)
            if champion_value is not None
            else champion.metrics
        )
        outcome.metrics.loc[f"champion ({champion.kind})"] = pd.Series(row)
    table_md = metrics_markdown(outcome.metrics)
    best = outcome.best
    record = registry.register(
        outcome.models[best],
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        data_hash=data_hash,
        primary_metric=params.primary_metric,
        metrics=outcome.metrics.loc[best].dropna().to_dict(),
        params={**params.model_dump(), "seed": seed, "split": asdict(split)},
        comparison_markdown=table_md,
    )
    decision = registry.promote_if_better(record, champion_value=champion_value, force=params.force_promote)
    logger.info("model %s: %s", record.version, decision.reason)

    best_value = pd.to_numeric(outcome.metrics[params.primary_metric]).loc[best]
    notes = [
        f"best of this run: {best} ({params.primary_metric} = {best_value:.4f})",
        f"registered as {record.version}",
        f"promotion: {'yes' if decision.promoted else 'no'} — {decision.reason}",
        f"split: {split.train_pairs} train / {split.val_pairs} validation "
        f"pairs, {split.train_images} / {split.val_images} images, "
        f"{split.val_queries} validation and {split.test_queries} test queries",
        "fit seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in outcome.fit_seconds.items()),
    ]
    report = workspace.reports / "training" / f"{record.version}.html"
    write_text_atomic(report, metrics_html(outcome.metrics, f"Training run {record.version}", notes))
    write_text_atomic(
        workspace.reports / "training" / "latest.html",
        metrics_html(outcome.metrics, f"Training run {record.version}", notes),
    )
    create_markdown_artifact(
        key="model-comparison",
        markdown="## Model comparison\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n"
        + table_md
        + f"\n\nHTML report: `{report}`\n",
        description="Every model of this run against the baselines and the champion",
    )
    create_table_artifact(
        key="model-metrics",
        table=[
            {"model": str(name), **{str(k): (None if pd.isna(v) else round(float(v), 4)) for k, v in row.items()}}
            for name, row in outcome.metrics.iterrows()
        ],
        description="Metrics per model",
    )
    return TrainReport(
        best=best,
        version=record.version,
        promoted=decision.promoted,
        reason=decision.reason,
        champion=decision.champion,
        primary_metric=params.primary_metric,
        metrics={
            name: {k: (None if (isinstance(v, float) and math.isnan(v)) else float(v)) for k, v in row.items()}
            for name, row in outcome.metrics.iterrows()
        },
        fit_seconds=outcome.fit_seconds,
        split=asdict(split),
        report_path=str(report),
        train_seconds=time.perf_counter() - started,
    )


def captions_frame(
    texts: pd.DataFrame, flagged_images: set[str], flagged_texts: set[str], images: set[str]
) -> pd.DataFrame:
    """Known captions of the given images, minus any whose text or image the safety screen flagged."""
    frame = texts[["query_id"]].copy()
    frame["image"] = caption_image(frame["query_id"])
    keep = frame["image"].isin(images) & ~frame["image"].isin(flagged_images) & ~frame["query_id"].isin(flagged_texts)
    frame = frame[keep].reset_index(drop=True)
    frame["safe"] = True
    return frame
