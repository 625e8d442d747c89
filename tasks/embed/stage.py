"""The embedding stage: every known text and every train and test image, through the cache, in shards.

`embed_inputs` is the plain function. It hashes the inputs, looks them up in the cache, splits only the
misses into shards and hands the shards to a runner: in this process by default, or as Prefect tasks
on whatever task runner the caller has (a Dask cluster in `flows/embed.py`). Shards carry encoder ids
and file paths, never models: each worker builds the encoder once per process from the registry.
Vectors come back to the caller, which writes the cache, so workers need no shared disk for the cache.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tasks.embed.cache import CacheReport, EmbeddingCache, Embeddings, hash_files, text_keys
from tasks.embed.encoders.base import IMAGE_BATCH_SIZE, configure_torch_threads
from tasks.embed.encoders.batching import encode_image_files, encode_texts
from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder
from tasks.progress import ProgressLog, run_logger
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.ingest.dataset import IngestedDataset


log = logging.getLogger(__name__)

Kind = Literal["text", "image"]
DEFAULT_SHARD_SIZE = 512


@dataclass(frozen=True)
class EmbedInputs:
    """What the stage embeds: texts named by query_id, and image files named by file name per folder."""

    text_ids: tuple[str, ...]
    texts: tuple[str, ...]
    train_images: tuple[Path, ...]
    test_images: tuple[Path, ...]

    @classmethod
    def from_dataset(cls, dataset: IngestedDataset) -> EmbedInputs:
        """From an `IngestedDataset`: `texts()` and every file in the two image folders that ingestion listed."""
        texts = dataset.texts()
        files = dataset.image_files
        folders = {"train": dataset.train_image_dir, "test": dataset.test_image_dir}
        images = {
            kind: tuple(folder / name for name in sorted(files.loc[files["folder"] == folder.name, "image"]))
            for kind, folder in folders.items()
        }
        return cls(
            text_ids=tuple(texts["query_id"]),
            texts=tuple(texts["query_text"]),
            train_images=images["train"],
            test_images=images["test"],
        )


@dataclass(frozen=True)
class Shard:
    """A unit of embedding work: content keys and the texts or file paths they were computed from."""

    kind: Kind
    encoder_id: str
    keys: tuple[str, ...]
    items: tuple[str, ...]


@dataclass(frozen=True)
class ShardResult:
    kind: Kind
    encoder_id: str
    keys: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)
    seconds: float
    worker: str = ""  # host:pid that computed it, so a run shows how far it was spread


@dataclass(frozen=True)
class EmbedSummary:
    text_encoder: str
    image_encoder: str
    counts: dict[str, int]  # texts, train_images, test_images -> vectors
    cache: dict[str, CacheReport]  # text, image -> what the cache held and what was embedded
    shards: int
    workers: int
    seconds: float


@dataclass(frozen=True)
class EmbedStageOutput:
    """The stage's products, in memory for the next stages: vectors by query_id and by image file name."""

    texts: Embeddings
    train_images: Embeddings
    test_images: Embeddings
    summary: EmbedSummary


def plan_shards(
    kind: Kind,
    encoder_id: str,
    keys: Sequence[str],
    items: Sequence[str],
    cache: EmbeddingCache,
    shard_size: int,
    force: bool = False,
) -> list[Shard]:
    """Split the inputs the cache lacks (each content key once) into shards of at most `shard_size`.

    `force` plans every input, cached or not (a backfill that re-embeds). The new vectors land in a newer
    cache part, which wins over older parts on read; the old parts stay until compaction, so a crash
    mid-backfill still leaves the previous vectors in place."""
    first: dict[str, str] = {}
    for key, item in zip(keys, items, strict=True):
        first.setdefault(key, item)
    missing = list(first) if force else cache.missing(list(first))
    return [
        Shard(kind, encoder_id, tuple(chunk), tuple(first[k] for k in chunk))
        for chunk in (missing[i : i + shard_size] for i in range(0, len(missing), shard_size))
    ]


def embed_shard(
    shard: Shard,
    batch_size: int = IMAGE_BATCH_SIZE,
    num_workers: int = 2,
    torch_threads: int | None = None,
    progress: bool | None = None,
    progress_log: ProgressLog | None = None,
) -> ShardResult:
    """Embed one shard with the encoder its id names (built once per process); rows done are counted in
    `progress_log` batch by batch when the shard runs in the process that holds it."""
    started = time.perf_counter()
    configure_torch_threads(torch_threads)
    if shard.kind == "text":
        encoder = get_text_encoder(shard.encoder_id)
        matrix = encode_texts(encoder, list(shard.items), progress=progress, progress_log=progress_log)
    else:
        paths = [Path(p) for p in shard.items]
        matrix = encode_image_files(
            get_image_encoder(shard.encoder_id), paths, batch_size, num_workers, progress, progress_log
        )
    seconds = round(time.perf_counter() - started, 3)
    return ShardResult(
        shard.kind, shard.encoder_id, shard.keys, matrix, seconds, f"{socket.gethostname()}:{os.getpid()}"
    )


ShardRunner = Callable[[list[Shard]], Iterable[ShardResult]]


def run_shards_here(
    shards: list[Shard],
    embed: Callable[..., ShardResult] = embed_shard,
    progress_logs: dict[Kind, ProgressLog] | None = None,
    **options: Any,
) -> Iterator[ShardResult]:
    """Run shards one after another in this process: a shard already uses every core, so running shards side
    by side here only thrashes. `embed` is `embed_shard`, or its Prefect task so each shard shows in a run.
    With `progress_logs` (by shard kind), each shard counts its rows there batch by batch."""
    for shard in shards:
        if progress_logs:
            yield embed(shard, progress_log=progress_logs[shard.kind], **options)
        else:
            yield embed(shard, **options)


def _report(
    kind: Kind, encoder_id: str, keys: Sequence[str], shards: list[Shard], corrupt: int, seconds: float
) -> CacheReport:
    unique = len(set(keys))
    misses = sum(len(s.keys) for s in shards if s.kind == kind)
    return CacheReport(encoder_id, len(keys), unique, unique - misses, misses, corrupt, round(seconds, 3))


def embed_inputs(
    inputs: EmbedInputs,
    text_encoder: str,
    image_encoder: str,
    workspace: Workspace,
    shard_size: int = DEFAULT_SHARD_SIZE,
    run_shards: ShardRunner | None = None,
    force: bool = False,
) -> EmbedStageOutput:
    """Embed every text and image of `inputs`, computing only what the cache lacks (everything if `force`);
    contracts check the output."""
    from data_contracts.embeddings import check_embeddings

    started = time.perf_counter()
    # Canonical ids (an alias such as all-MiniLM-L6-v2 shares minilm-l6's cache); a missing model fails here.
    text_encoder = get_text_encoder(text_encoder).encoder_id
    image_encoder = get_image_encoder(image_encoder).encoder_id
    caches = {
        "text": EmbeddingCache.for_workspace(workspace, text_encoder),
        "image": EmbeddingCache.for_workspace(workspace, image_encoder),
    }
    image_paths = list(inputs.train_images) + list(inputs.test_images)
    keys = {"text": text_keys(inputs.texts), "image": hash_files(image_paths)}
    items = {"text": list(inputs.texts), "image": [str(p) for p in image_paths]}
    encoder_ids = {"text": text_encoder, "image": image_encoder}
    shards = [
        shard
        for kind in ("text", "image")
        for shard in plan_shards(kind, encoder_ids[kind], keys[kind], items[kind], caches[kind], shard_size, force)
    ]
    seconds = {"text": 0.0, "image": 0.0}
    workers = set()
    # A line per tenth of each kind's misses: batch by batch in this process, shard by shard from elsewhere.
    logger = run_logger(log)
    progress_logs: dict[Kind, ProgressLog] = {
        kind: ProgressLog(
            f"embedding {kind}s with {encoder_ids[kind]}", sum(len(s.keys) for s in shards if s.kind == kind), logger
        )
        for kind in ("text", "image")
    }
    rows_back = {"text": 0, "image": 0}
    runner = run_shards or run_shards_here
    if runner is run_shards_here or (isinstance(runner, functools.partial) and runner.func is run_shards_here):
        runner = functools.partial(runner, progress_logs=progress_logs)  # in this process: batch by batch
    for result in runner(shards):
        caches[result.kind].add(list(result.keys), result.matrix)
        seconds[result.kind] += result.seconds
        workers.add(result.worker)
        rows_back[result.kind] += len(result.keys)
        progress_logs[result.kind].reach(rows_back[result.kind])

    dims = {"text": get_text_encoder(text_encoder).dim, "image": get_image_encoder(image_encoder).dim}
    n_train = len(inputs.train_images)
    image_matrix = caches["image"].get(keys["image"]) if image_paths else np.zeros((0, dims["image"]), np.float32)
    text_matrix = caches["text"].get(keys["text"]) if inputs.texts else np.zeros((0, dims["text"]), np.float32)
    outputs = {
        "texts": Embeddings(inputs.text_ids, text_matrix, text_encoder),
        "train_images": Embeddings(tuple(p.name for p in inputs.train_images), image_matrix[:n_train], image_encoder),
        "test_images": Embeddings(tuple(p.name for p in inputs.test_images), image_matrix[n_train:], image_encoder),
    }
    expected = {"texts": len(inputs.texts), "train_images": n_train, "test_images": len(inputs.test_images)}
    for name, emb in outputs.items():
        dim = dims["text" if name == "texts" else "image"]
        check_embeddings(name, emb.keys, emb.matrix, dim, expected[name], f"{emb.encoder_id} embeddings of {name}")

    # Per kind, `seconds` is the time spent embedding misses; the summary's `seconds` is the whole stage.
    reports = {
        kind: _report(kind, encoder_ids[kind], keys[kind], shards, caches[kind].corrupt_parts, seconds[kind])
        for kind in ("text", "image")
    }
    summary = EmbedSummary(
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        counts={name: len(emb) for name, emb in outputs.items()},
        cache=reports,
        shards=len(shards),
        workers=len(workers),
        seconds=round(time.perf_counter() - started, 3),
    )
    return EmbedStageOutput(summary=summary, **outputs)
