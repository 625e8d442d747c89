"""The main job: ingest → ratings → child safety → EDA → embeddings → detector → train/register → gallery index."""

from __future__ import annotations

from prefect import flow, get_run_logger
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


@flow(name="imgsearch-run", description="Ingest and validate a dataset, then curate, embed, train, register and index.")
def run_pipeline(params: RunParams) -> RunResult:
    from tasks.training.registry import ModelRegistry

    workspace = params.resolve_workspace()
    dataset = ingest_task(params.data_dir, workspace)
    mixed = dataset_mix_warning(ModelRegistry(workspace).champion(), dataset.summary.version, dataset.data_dir)
    if mixed:
        get_run_logger().warning(mixed)
    if params.include_ratings_store:
        dataset = merge_ratings_store_task(dataset, workspace)
    # Ratings -> child-safety filter -> EDA: `safety.kept` is the training set later stages use.
    ratings = aggregate_ratings_task(dataset, params.ratings)
    safety = child_safety_task(dataset, ratings, params.ratings, workspace)
    labels = label_images_task(dataset, ratings, safety, workspace)
    report = eda_report_task(dataset, ratings, safety, workspace)
    embedded = embed_task(dataset, workspace, params.text_encoder, params.image_encoder, force=params.force_reembed)
    # The training set leaves out every image the safety decision hides, exactly as search does.
    image_result = image_safety(
        dataset, safety, labels, params.image_encoder, params.image_safety, params.seed, workspace
    )
    safety = image_result.outcome

    encoders = (params.text_encoder, params.image_encoder)
    inputs = TrainInputs.from_stages(dataset, safety, embedded, encoders, params.training, params.seed)
    comparison = fit_and_compare(inputs, workspace)
    registration = register_and_promote(inputs, comparison, workspace)
    training = publish_training_report(comparison, registration, workspace)
    # re-indexed only when the champion changed, for the champion, and never from another dataset than its own
    gallery = (
        update_gallery_task(
            dataset.test_image_dir, workspace, dataset.summary.version, training.promoted, ann_params=params.ann
        )
        if params.index_gallery
        else None
    )
    return RunResult(
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
    )
