"""The main job: ingest → ratings → child safety → EDA → embeddings → detector → train/register → gallery index."""

from __future__ import annotations

from dataclasses import asdict, replace

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.params import ModelRunParams
from tasks.eda.tasks import eda_report_task
from tasks.embed.tasks import embed_task
from tasks.ingest.dataset import IngestedDataset
from tasks.ingest.tasks import ingest_task
from tasks.ratings.tasks import aggregate_ratings_task
from tasks.safety.tasks import child_detector_task, child_safety_task
from tasks.search.tasks import index_gallery_task
from tasks.training.tasks import captions_frame, train_evaluate_register
from tasks.workspace import Workspace


class RunParams(ModelRunParams):
    """Parameters of one pipeline run; the dashboard renders them as a form."""

    include_ratings_store: bool = Field(default=True, description="Add the rating batches merged from the inbox")
    force_reembed: bool = Field(
        default=False,
        description="Re-embed every text and image with this run's encoders, overwriting their cache entries",
    )


class RunResult(BaseModel):
    ingest: dict
    ratings: dict = Field(default_factory=dict, description="Pair counts of the rating aggregation")
    safety: dict = Field(default_factory=dict, description="Texts, images and pairs flagged by the child filter")
    eda_report: str | None = Field(default=None, description="Path of the EDA report HTML")
    embeddings: dict = Field(default_factory=dict, description="Counts, encoder ids, cache hits/misses, seconds")
    detector: dict = Field(
        default_factory=dict, description="Child-image detector: precision and recall on held-out images"
    )
    training: dict = Field(
        default_factory=dict, description="Metrics per model, best model, registry version, promotion"
    )
    gallery: dict = Field(default_factory=dict, description="Search index of the test images")


@task(name="merge-ratings-store", cache_policy=NO_CACHE)
def merge_ratings_store_task(dataset: IngestedDataset, workspace: Workspace) -> IngestedDataset:
    """Add the rating batches merged from the inbox; a pair rated again takes its newest rating."""
    from tasks.ingest.tables import CROWD, EXPERT
    from tasks.ratings.inbox import load_ratings_store, merge_ratings

    store = load_ratings_store(workspace)
    if store["crowd"].empty and store["expert"].empty:
        return dataset
    known = set(dataset.texts()["query_id"])
    crowd = store["crowd"][store["crowd"]["query_id"].isin(known)] if not store["crowd"].empty else store["crowd"]
    expert = store["expert"][store["expert"]["query_id"].isin(known)] if not store["expert"].empty else store["expert"]
    return replace(
        dataset,
        crowd=merge_ratings(dataset.crowd, crowd, CROWD.columns),
        expert=merge_ratings(dataset.expert, expert, EXPERT.columns),
    )


@flow(name="imgsearch-run", description="Ingest and validate a dataset, then curate, embed, train, register and index.")
def run_pipeline(params: RunParams) -> RunResult:
    workspace = params.resolve_workspace()
    dataset = ingest_task(params.data_dir, workspace)
    if params.include_ratings_store:
        dataset = merge_ratings_store_task(dataset, workspace)
    # Ratings -> child-safety filter -> EDA: `safety.kept` is the training set later stages use.
    ratings = aggregate_ratings_task(dataset, params.ratings)
    safety = child_safety_task(dataset, ratings, params.ratings, workspace)
    report = eda_report_task(dataset, ratings, safety, workspace)
    embedded = embed_task(dataset, workspace, params.text_encoder, params.image_encoder, force=params.force_reembed)
    detector = child_detector_task(safety, embedded.train_images, params.image_encoder, workspace, params.seed)

    flagged_texts = set(safety.text_flags.loc[safety.text_flags["flagged"], "query_id"])
    flagged_images = set(safety.image_flags.loc[safety.image_flags["flagged"], "image"])
    captions = captions_frame(dataset.texts(), flagged_images, flagged_texts, set(embedded.train_images.keys))
    test_queries = dataset.queries[["query_id", "image"]].assign(safe=~dataset.queries["query_id"].isin(flagged_texts))
    training = train_evaluate_register(
        safety.kept,
        captions,
        test_queries,
        dataset.test_images["image"].tolist(),
        embedded.texts,
        embedded.train_images,
        embedded.test_images,
        params.text_encoder,
        params.image_encoder,
        dataset.summary.data_hash,
        params.training,
        params.seed,
        workspace,
    )
    gallery = {}
    if params.index_gallery:
        # indexed for the champion (which may use other encoders than this run, if this run did not win)
        gallery = index_gallery_task(dataset.test_image_dir, workspace)
    return RunResult(
        ingest=dataset.summary.as_dict(),
        ratings=ratings.counts.as_dict(),
        safety=asdict(safety.summary),
        eda_report=str(report.html),
        embeddings=embedded.summary.as_dict(),
        detector=detector,
        training=training.as_dict(),
        gallery=gallery,
    )
