"""The embedding job on its own: ingest a dataset, embed what the cache lacks, in shards on this machine
or on a Dask cluster (`dask_address`), e.g. to backfill the cache with another encoder.

    python -m flows.embed DATA_DIR [--image-encoder efficientnet-lite2] [--dask-address tcp://host:8786]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import as_completed
from pydantic import BaseModel, Field

from flows.params import DatasetParams
from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, IMAGE_BATCH_SIZE
from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder
from tasks.embed.stage import (
    DEFAULT_SHARD_SIZE,
    EmbedInputs,
    EmbedStageOutput,
    Shard,
    ShardResult,
    embed_inputs,
    run_shards_here,
)
from tasks.embed.tasks import embed_shard_task, publish_embed_summary
from tasks.ingest.tasks import ingest_task


class ShardingParams(BaseModel):
    """Where and how embedding shards run: here one after another, or on a Dask cluster."""

    shard_size: int = Field(default=DEFAULT_SHARD_SIZE, ge=1, description="Texts or images per shard (one task each)")
    dask_address: str | None = Field(
        default=None, description="Dask scheduler, e.g. tcp://10.0.0.5:8786; none: this machine"
    )
    batch_size: int = Field(default=IMAGE_BATCH_SIZE, ge=1, description="Images per model call")
    decode_threads: int = Field(default=2, ge=0, description="Threads per shard that decode and resize images")
    torch_threads: int | None = Field(
        default=None, ge=1, description="Torch threads per shard; default: the worker's cores"
    )


class EmbedParams(ShardingParams, DatasetParams):
    """Parameters of one embedding run; the dashboard renders them as a form."""

    text_encoder: str = Field(default=DEFAULT_TEXT_ENCODER, description="Text encoder id (see tasks/embed/encoders/)")
    image_encoder: str = Field(
        default=DEFAULT_IMAGE_ENCODER, description="Image encoder id (see tasks/embed/encoders/)"
    )


@contextlib.contextmanager
def shard_runner(params: ShardingParams) -> Iterator:
    """How shards run: as Prefect tasks one after another here, or all at once on the Dask cluster."""
    options: dict[str, Any] = {
        "batch_size": params.batch_size,
        "num_workers": params.decode_threads,
        "torch_threads": params.torch_threads,
    }
    if not params.dask_address:
        yield functools.partial(run_shards_here, embed=embed_shard_task, **options)
        return

    from prefect_dask import DaskTaskRunner

    with DaskTaskRunner(address=params.dask_address) as runner:

        def run_on_cluster(shards: list[Shard]) -> Iterator[ShardResult]:
            futures = [runner.submit(embed_shard_task, {"shard": shard, **options}) for shard in shards]
            for future in as_completed(futures):
                yield future.result()

        yield run_on_cluster


@flow(name="imgsearch-embed", description="Embed a dataset's texts and images into the content-addressed cache.")
def embed_flow(params: EmbedParams) -> EmbedStageOutput:
    workspace = params.resolve_workspace()
    # Resolve the encoders first: a missing model fails the run before ingestion and hashing.
    get_text_encoder(params.text_encoder)
    get_image_encoder(params.image_encoder)
    dataset = ingest_task(params.data_dir, workspace)
    with shard_runner(params) as run_shards:
        output = embed_inputs(
            EmbedInputs.from_dataset(dataset),
            params.text_encoder,
            params.image_encoder,
            workspace,
            params.shard_size,
            run_shards,
        )
    publish_embed_summary(output.summary)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER)
    parser.add_argument("--image-encoder", default=DEFAULT_IMAGE_ENCODER)
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--dask-address")
    args = parser.parse_args(argv)
    output = embed_flow(EmbedParams(**{k: v for k, v in vars(args).items() if v is not None}))
    print(asdict(output.summary))  # noqa: T201 - command-line output


if __name__ == "__main__":
    main()
