"""Prefect tasks of the embedding stage: a shard, the whole stage, and its summary artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.embed.encoders.base import IMAGE_BATCH_SIZE
from tasks.embed.stage import (
    DEFAULT_SHARD_SIZE,
    EmbedInputs,
    EmbedStageOutput,
    EmbedSummary,
    Shard,
    ShardResult,
    embed_inputs,
    embed_shard,
)
from tasks.progress import ProgressLog
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.ingest.dataset import IngestedDataset


@task(name="embed-shard", cache_policy=NO_CACHE, retries=1)
def embed_shard_task(
    shard: Shard,
    batch_size: int = IMAGE_BATCH_SIZE,
    num_workers: int = 2,
    torch_threads: int | None = None,
    progress_log: ProgressLog | None = None,
) -> ShardResult:
    """One shard; `progress_log` (the stage's, when the shard runs in its process) counts rows batch by batch."""
    return embed_shard(shard, batch_size, num_workers, torch_threads, progress=False, progress_log=progress_log)


def publish_embed_summary(summary: EmbedSummary, key: str = "embed-summary") -> None:
    """The stage's numbers as a Prefect table artifact: one row per input kind."""
    rows = [
        {
            "kind": kind,
            "encoder": report.encoder_id,
            "inputs": report.requested,
            "unique": report.unique,
            "cache hits": report.hits,
            "embedded": report.misses,
            "corrupt parts rebuilt": report.corrupt_parts,
            "seconds": report.seconds,
        }
        for kind, report in summary.cache.items()
    ]
    create_table_artifact(
        key=key,
        table=rows,
        description=(
            f"Embeddings: {summary.counts} with {summary.text_encoder} / {summary.image_encoder}; "
            f"{summary.shards} shard(s) on {summary.workers} worker(s), {summary.seconds:.1f} s"
        ),
    )


@task(name="embed", cache_policy=NO_CACHE, retries=0)
def embed_task(
    dataset: IngestedDataset,
    workspace: Workspace,
    text_encoder: str,
    image_encoder: str,
    shard_size: int = DEFAULT_SHARD_SIZE,
    force: bool = False,
) -> EmbedStageOutput:
    """The pipeline's embedding stage, in this process: embed what the cache lacks (all if `force`), publish numbers."""
    output = embed_inputs(
        EmbedInputs.from_dataset(dataset), text_encoder, image_encoder, workspace, shard_size, force=force
    )
    publish_embed_summary(output.summary)
    return output
