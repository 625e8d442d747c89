"""Operations flows: take in new rating files, retrain and promote when they arrive, backfill with other encoders.

- `ingest_ratings`: validate and merge the inbox; emit `imgsearch.ratings.merged` when something merged.
- `retrain`: the pipeline with the ratings store included; the embedding cache makes unchanged inputs free,
  and the registry promotes only a challenger that beats the champion.
- `backfill`: the pipeline with chosen encoders, optionally re-embedding everything.

`retrain` and `backfill` run their body under the workspace lock `TRAINING_LOCK`, so two of them on one
workspace take turns even when started outside the deployments (whose concurrency limit is 1 each).
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.params import DatasetParams, ModelRunParams
from flows.pipeline import RunParams, RunResult, run_pipeline
from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from tasks.ingest.tasks import ingest_task
from tasks.ratings.inbox import BatchOutcome, inbox_entries
from tasks.ratings.tasks import emit_ratings_merged, known_references_task, latest_version_of, process_inbox_task
from tasks.search.ann import AnnParams
from tasks.training.inputs import TrainParams
from tasks.workspace import Workspace, file_sha256, text_sha256

TRAINING_LOCK = "training"


class InboxParams(DatasetParams):
    """Parameters of one inbox check; the dashboard renders them as a form."""

    reingest: bool = Field(
        default=False,
        description="Validate data_dir again instead of reusing its latest prepared dataset version for the known ids",
    )


class InboxResult(BaseModel):
    dataset_version: str | None = Field(default=None, description="None when the inbox was empty")
    outcomes: list[BatchOutcome] = Field(default_factory=list, description="One outcome per inbox file")
    merged_batches: list[str] = Field(default_factory=list)
    merged_rows: int = 0
    event_id: str | None = Field(default=None, description="Id of the imgsearch.ratings.merged event, if one was sent")


class AllBatchesQuarantinedError(RuntimeError):
    """Every inbox file of a run was bad: the run ends Failed so the dashboard shows it in red."""


@flow(
    name="ingest-ratings",
    description="Validate new rating files in the inbox, merge the good ones, announce the merge.",
)
def ingest_ratings(params: InboxParams) -> InboxResult:
    """Process every file in `<workspace>/inbox/`.

    An empty inbox ends the run at once: no task, no artifact. Good batches merge into the append-only
    store and `imgsearch.ratings.merged` is emitted (once per run,
    listing every merged batch). Bad files go to quarantine; each is logged as a warning and listed in the
    `ratings-inbox` artifact. The run ends Failed only when files arrived and every one was quarantined:
    then nothing can retrain and an operator must look. A mix of good and bad files completes (the good ones
    count) with the bad ones in the artifact and the log; duplicates are archived and never merged twice.
    """
    workspace = params.resolve_workspace()
    if not inbox_entries(workspace):
        # Polled every minute: an empty inbox runs no task and writes no artifact (and ingests nothing).
        get_run_logger().debug("inbox %s is empty", workspace.inbox)
        return InboxResult()
    # what a batch may name comes from the latest prepared version of data_dir; without one, ingest it now
    version_dir = None if params.reingest else latest_version_of(workspace, params.data_dir)
    if version_dir is None:
        version_dir = workspace.dataset_dir(ingest_task(params.data_dir, workspace).summary.version)
    references = known_references_task(version_dir)
    outcomes: list[BatchOutcome] = process_inbox_task(workspace, references)
    event_id = emit_ratings_merged(workspace, outcomes, references.version)
    merged = [o for o in outcomes if o.status == "merged"]
    quarantined = [o for o in outcomes if o.status == "quarantined"]
    if quarantined and len(quarantined) == len(outcomes):
        raise AllBatchesQuarantinedError(
            f"all {len(outcomes)} inbox file(s) were quarantined: "
            + "; ".join(f"{o.file}: {o.reason}" for o in quarantined)[:2000]
        )
    return InboxResult(
        dataset_version=references.version,
        outcomes=outcomes,
        merged_batches=[o.batch_id for o in merged],
        merged_rows=sum(o.rows for o in merged),
        event_id=event_id,
    )


class RetrainParams(ModelRunParams):
    """Parameters of a retrain; the dashboard renders them as a form."""

    def run_params(self, force_reembed: bool = False) -> RunParams:
        return RunParams(**self.model_dump(), include_ratings_store=True, force_reembed=force_reembed)


class OperationResult(BaseModel):
    run: RunResult | None = Field(default=None, description="None when the retrain had nothing new to train on")
    summary_markdown: str
    skipped: bool = Field(default=False, description="Ended at once: nothing changed since the last good retrain")


def store_version(workspace: Workspace) -> str:
    """The ratings store's version: a hash of the ids of its merged batches (the store is append-only)."""
    from tasks.ratings.inbox import merged_batch_ids

    return text_sha256("\n".join(sorted(merged_batch_ids(workspace))))[:16]


def dataset_fingerprint(data_dir: Path) -> str:
    """A cheap stand-in for the dataset version (no validation): the tables' bytes and the image folders'
    names and sizes. A new delivery in the same folder changes it, so a scheduled retrain then runs."""
    import hashlib

    from tasks.ingest.tables import TABLE_FORMATS

    digest = hashlib.sha256()
    for fmt in TABLE_FORMATS.values():
        path = Path(data_dir) / fmt.filename
        digest.update(f"{fmt.filename}:{file_sha256(path) if path.is_file() else '-'}\n".encode())
    for folder in ("train_images", "test_images"):
        entries = (
            sorted(os.scandir(Path(data_dir) / folder), key=lambda e: e.name)
            if (Path(data_dir) / folder).is_dir()
            else []
        )
        for entry in entries:
            digest.update(f"{folder}/{entry.name}:{entry.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def retrain_inputs(run_params: RunParams) -> dict:
    """What a retrain trains on; two retrains with equal inputs train the same model twice."""
    workspace = run_params.resolve_workspace()
    return {
        "store_version": store_version(workspace),
        "dataset": dataset_fingerprint(run_params.data_dir),
        "params": text_sha256(run_params.model_dump_json())[:16],
    }


def run_summary_markdown(title: str, result: RunResult, store_batches: int) -> str:
    """What the run rebuilt (embedding cache hits and misses) and what the registry decided, and why."""
    emb, tr = result.embeddings, result.training
    lines = [
        f"## {title}",
        "",
        f"Encoders: text `{emb.text_encoder}`, image `{emb.image_encoder}`; embedding stage {emb.seconds:.1f} s.",
        "",
        "| kind | inputs | cache hits | embedded now |",
        "|---|---|---|---|",
        *(f"| {kind} | {c.unique} | {c.hits} | {c.misses} |" for kind, c in emb.cache.items()),
        "",
        f"Ratings store: {store_batches} merged batch(es) included.",
        "",
        f"Challenger: `{tr.version}` ({tr.best}, {tr.primary_metric} = {tr.best_metrics[tr.primary_metric]:.4f}).",
        "",
        f"**{'Promoted' if tr.promoted else 'Not promoted'}**: {tr.reason}.",
        f"Champion now: `{tr.champion}`.",
    ]
    return "\n".join(lines) + "\n"


def _run_locked(title: str, run_params: RunParams, artifact_key: str, coalesce: bool = False) -> OperationResult:
    """The pipeline under the training lock. With `coalesce`, a run whose inputs (ratings-store version, dataset,
    parameters) equal those of the last good retrain ends at once: a burst of merges queues a burst of retrains,
    and only the first one after the last merge has anything new to train on."""
    from datetime import UTC, datetime

    from tasks.ratings.inbox import merged_batch_ids

    logger = get_run_logger()
    workspace = run_params.resolve_workspace()
    logger.info("waiting for the workspace lock %r (%s)", TRAINING_LOCK, workspace.lock_path(TRAINING_LOCK))
    with workspace.lock(TRAINING_LOCK):
        # read under the lock: the retrain this one queued behind may just have recorded these same inputs
        inputs = retrain_inputs(run_params)
        last = workspace.read_last_retrain()
        if coalesce and last is not None and last.get("inputs") == inputs:
            summary = (
                f"## {title}: skipped\n\nNothing new since the last good retrain at {last.get('finished', '?')} "
                f"(model `{last.get('model_version', '?')}`): ratings store version `{inputs['store_version']}` "
                f"({last.get('store_batches', '?')} merged batch(es)), same dataset and parameters. "
                "This run ended without training.\n"
            )
            create_markdown_artifact(key=artifact_key, markdown=summary, description=f"{title} (skipped)")
            logger.info("skipped: nothing new since the last good retrain (store version %s)", inputs["store_version"])
            return OperationResult(summary_markdown=summary, skipped=True)
        result = run_pipeline(run_params)
        store_batches = len(merged_batch_ids(workspace))
        workspace.write_last_retrain(
            {
                "inputs": inputs,
                "store_batches": store_batches,
                "model_version": result.training.version,
                "champion": result.training.champion,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    summary = run_summary_markdown(title, result, store_batches)
    create_markdown_artifact(key=artifact_key, markdown=summary, description=title)
    logger.info("%s: %s", "promoted" if result.training.promoted else "not promoted", result.training.reason)
    return OperationResult(run=result, summary_markdown=summary)


@flow(name="retrain", description="Retrain on the dataset plus every merged rating batch; promote only a better model.")
def retrain(params: RetrainParams) -> OperationResult:
    return _run_locked("Retrain", params.run_params(), "retrain-summary", coalesce=True)


class BackfillParams(RetrainParams):
    """A backfill: the pipeline with the given encoders (and dataset folder), optionally re-embedding everything."""

    force_reembed: bool = Field(
        default=False,
        description="Re-embed every text and image with these encoders and overwrite their cache entries "
        "(new vectors are written before old ones are dropped)",
    )


@flow(
    name="backfill",
    description="Rebuild with other encoders or another dataset folder; optionally re-embed everything.",
)
def backfill(
    data_dir: Path,
    text_encoder: str = DEFAULT_TEXT_ENCODER,
    image_encoder: str = DEFAULT_IMAGE_ENCODER,
    force_reembed: bool = False,
    seed: int = 0,
    training: TrainParams | None = None,
    workspace: Path | None = None,
    index_gallery: bool = True,
    ann: AnnParams | None = None,
) -> OperationResult:
    """Flat parameters (unlike the other flows) so that `prefect deployment run backfill/backfill
    --param image_encoder=efficientnet-lite2` works: `--param` sets top-level keys only (a nested one is JSON:
    `--param ann='{"kind": "ivf-sq8", "nlist": 64}'`). They are validated together as `BackfillParams` before
    any work starts."""
    params = BackfillParams(
        data_dir=data_dir,
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        force_reembed=force_reembed,
        seed=seed,
        training=training or TrainParams(),
        workspace=workspace,
        index_gallery=index_gallery,
        ann=ann,
    )
    # Fail on an unknown or missing encoder before taking the lock and ingesting.
    from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder

    get_text_encoder(params.text_encoder)
    get_image_encoder(params.image_encoder)
    run_params = RunParams(
        **params.model_dump(exclude={"force_reembed"}), include_ratings_store=True, force_reembed=params.force_reembed
    )
    title = f"Backfill with {params.text_encoder} / {params.image_encoder}" + (
        " (forced re-embed)" if params.force_reembed else ""
    )
    return _run_locked(title, run_params, "backfill-summary")
