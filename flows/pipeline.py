"""The main job: ingest → ratings → child safety → EDA → embeddings → detector → train/register → gallery index."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.params import ModelRunParams
from tasks.eda.tasks import eda_report_task
from tasks.embed.stage import EmbedSummary
from tasks.embed.tasks import embed_task
from tasks.ingest.dataset import IngestSummary
from tasks.ingest.tasks import ingest_task
from tasks.ratings.aggregate import RatingCounts
from tasks.ratings.tasks import aggregate_ratings_task, merge_ratings_store_task
from tasks.safety.policy import ImageSafetyParams
from tasks.safety.tasks import ImageSafetyReport, child_safety_task, image_safety, label_images_task
from tasks.safety.text_screen import SafetySummary
from tasks.search.gallery import IndexSummary, dataset_mix_warning
from tasks.search.tasks import update_gallery_task
from tasks.training.inputs import TrainInputs
from tasks.training.tasks import TrainReport, fit_and_compare, publish_training_report, register_and_promote


class RunParams(ModelRunParams):
    """Parameters of one pipeline run; the dashboard renders them as a form."""

    include_ratings_store: bool = Field(default=True, description="Add the rating batches merged from the inbox")
    image_safety: ImageSafetyParams = Field(
        default_factory=ImageSafetyParams, description="Child-image detector, its thresholds and the caption rule"
    )
    force_reembed: bool = Field(
        default=False,
        description="Re-embed every text and image with this run's encoders, overwriting their cache entries",
    )


class RunResult(BaseModel):
    """What each stage of a run reports, as the stages' own typed summaries."""

    ingest: IngestSummary
    ratings: RatingCounts = Field(description="Pair counts of the rating aggregation")
    safety: SafetySummary = Field(description="Texts, images and pairs flagged by the child filter")
    eda_report: str = Field(description="Path of the EDA report HTML")
    embeddings: EmbedSummary = Field(description="Counts, encoder ids, cache hits/misses, seconds")
    detector: ImageSafetyReport = Field(description="Child-image detector: label counts, thresholds, operating point")
    training: TrainReport = Field(description="Metrics per model, best model, registry version, promotion")
    gallery: IndexSummary | None = Field(default=None, description="Search index of the test images, if indexed")
    gallery_reason: str = Field(default="", description="Why the gallery was or was not re-indexed")
    dataset_warning: str | None = Field(default=None, description="Set when the champion was trained on other data")
    hidden_training_images: int = Field(
        default=0, description="Training images the safety decision hides (by captions, ratings or the detector)"
    )
    seconds: dict[str, float] = Field(default_factory=dict, description="Seconds per stage, and `total`")


RUN_SUMMARY_KEY = "run-summary"


def _number(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def run_summary_markdown(result: RunResult) -> str:
    """The run at a glance, for the flow run's own artifact: what each stage took in and gave out, and how long."""
    ingest, embed, training, gallery = result.ingest, result.embeddings, result.training, result.gallery
    safety = result.safety
    seconds = result.seconds
    metric = training.primary_metric

    def took(stage: str) -> str:
        return f"{seconds[stage]:.1f}" if stage in seconds else "–"

    cache = embed.cache
    rows = [
        (
            "ingest",
            ", ".join(f"{n} {name}" for name, n in ingest.rows.items())
            + "; images "
            + ", ".join(f"{n} {name}" for name, n in ingest.images.items()),
            took("ingest"),
        ),
        (
            "ratings",
            f"{result.ratings.pairs} pairs ({result.ratings.expert_pairs} expert, {result.ratings.crowd_pairs} crowd)",
            took("ratings"),
        ),
        (
            "child safety",
            f"{safety.texts_flagged} of {safety.texts_screened} texts flagged; "
            f"{safety.pairs_flagged} of {safety.pairs_before} pairs removed",
            took("child safety"),
        ),
        ("EDA", f"report `{result.eda_report}`", took("eda")),
        (
            "embeddings",
            "; ".join(
                f"{kind}s ({report.encoder_id}): {report.unique} distinct, "
                f"{report.hits} from the cache, {report.misses} computed"
                for kind, report in cache.items()
            ),
            took("embed"),
        ),
        (
            "image safety",
            f"{result.hidden_training_images} training images hidden "
            f"({result.detector.training_images_hidden_by_detector} by the detector)",
            took("image safety"),
        ),
        (
            "training",
            f"{len(training.fit_seconds)} models; best {training.best} "
            f"({metric} {_number(training.best_metrics.get(metric))}), version {training.version}",
            took("training"),
        ),
        (
            "gallery index",
            f"{gallery.searchable} searchable, {gallery.flagged} hidden by safety ({gallery.lookup})"
            if gallery
            else f"not re-indexed: {result.gallery_reason}",
            took("gallery"),
        ),
    ]
    lines = [
        f"## Pipeline run: dataset {ingest.version}",
        "",
        f"- **Champion**: {training.champion or 'none'} — "
        + ("this run's model was promoted" if training.promoted else "kept")
        + f" ({training.reason}).",
        f"- **Total**: {took('total')} s.",
        "",
    ]
    if result.dataset_warning:
        lines += [f"**Warning**: {result.dataset_warning}", ""]
    lines += ["| stage | what it did | seconds |", "|---|---|---:|"]
    lines += [f"| {stage} | {what} | {secs} |" for stage, what, secs in rows]
    lines += ["", f"### Models ({metric} on validation; the best is in bold)", ""]
    lines += ["| model | " + metric + " | fit seconds |", "|---|---:|---:|"]
    for name, fit in training.fit_seconds.items():
        label = f"**{name}**" if name == training.best else name
        lines.append(f"| {label} | {_number(training.metrics.get(name, {}).get(metric))} | {fit:.1f} |")
    return "\n".join(lines) + "\n"


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = round(seconds.get(stage, 0.0) + time.perf_counter() - started, 2)


@flow(name="imgsearch-run", description="Ingest and validate a dataset, then curate, embed, train, register and index.")
def run_pipeline(params: RunParams) -> RunResult:
    from tasks.training.registry import ModelRegistry

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    workspace = params.resolve_workspace()
    with _timed(seconds, "ingest"):
        dataset = ingest_task(params.data_dir, workspace)
        mixed = dataset_mix_warning(ModelRegistry(workspace).champion(), dataset.summary.version, dataset.data_dir)
        if mixed:
            get_run_logger().warning(mixed)
        if params.include_ratings_store:
            dataset = merge_ratings_store_task(dataset, workspace)
    # Ratings -> child-safety filter -> EDA: `safety.kept` is the training set later stages use.
    with _timed(seconds, "ratings"):
        ratings = aggregate_ratings_task(dataset, params.ratings)
    with _timed(seconds, "child safety"):
        safety = child_safety_task(dataset, ratings, params.ratings, workspace)
        labels = label_images_task(dataset, ratings, safety, workspace)
    with _timed(seconds, "eda"):
        report = eda_report_task(dataset, ratings, safety, workspace)
    with _timed(seconds, "embed"):
        embedded = embed_task(dataset, workspace, params.text_encoder, params.image_encoder, force=params.force_reembed)
    # The training set leaves out every image the safety decision hides, exactly as search does.
    with _timed(seconds, "image safety"):
        image_result = image_safety(
            dataset, safety, labels, params.image_encoder, params.image_safety, params.seed, workspace
        )
    safety = image_result.outcome

    encoders = (params.text_encoder, params.image_encoder)
    with _timed(seconds, "training"):
        inputs = TrainInputs.from_stages(dataset, safety, embedded, encoders, params.training, params.seed)
        comparison = fit_and_compare(inputs, workspace)
        registration = register_and_promote(inputs, comparison, workspace)
        training = publish_training_report(comparison, registration, workspace)
    # re-indexed only when the champion changed, for the champion, and never from another dataset than its own
    with _timed(seconds, "gallery"):
        gallery = (
            update_gallery_task(
                dataset.test_image_dir, workspace, dataset.summary.version, training.promoted, ann_params=params.ann
            )
            if params.index_gallery
            else None
        )
    seconds["total"] = round(time.perf_counter() - started, 2)
    result = RunResult(
        ingest=dataset.summary,
        ratings=ratings.counts,
        safety=safety.summary,
        eda_report=str(report.html),
        embeddings=embedded.summary,
        detector=image_result.report,
        training=training,
        gallery=gallery.summary if gallery else None,
        gallery_reason=gallery.reason if gallery else "index_gallery is off",
        dataset_warning=mixed,
        hidden_training_images=len(image_result.hidden_images),
        seconds=seconds,
    )
    # On the flow run itself (every other artifact hangs on a task): the run at a glance in the dashboard.
    create_markdown_artifact(
        key=RUN_SUMMARY_KEY,
        markdown=run_summary_markdown(result),
        description=f"Pipeline run on dataset {result.ingest.version}: stages, counts, models, seconds",
    )
    return result
