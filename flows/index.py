"""Indexing a folder of images for search as a flow: embed what is new in shards (here, or on a Dask cluster
when `dask_address` is given), with a progress line per shard, then build or update the index on this machine.

    imgsearch index DIR [--dask-address tcp://host:8786]      (the command line runs this flow)
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field, field_validator

from flows.embed import ShardingParams, shard_runner
from tasks.search.ann import AnnParams
from tasks.search.gallery import IndexSummary
from tasks.search.tasks import index_gallery_task
from tasks.workspace import Workspace


class IndexParams(ShardingParams):
    """Parameters of one index run; the dashboard renders them as a form."""

    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(description="Folder of JPEG images to make searchable")
    name: str = Field(default="gallery", description="Name of the index in the workspace (search uses 'gallery')")
    workspace: Path | None = Field(default=None, description="Workspace root; default: $IMGSEARCH_HOME or ~/.imgsearch")
    ann: AnnParams | None = Field(default=None, description="Lookup settings; None: automatic from the gallery size")
    rebuild: bool = Field(default=False, description="Build from scratch instead of updating the index")

    @field_validator("folder")
    @classmethod
    def _folder_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"folder {value} is not a folder")
        return value.resolve()

    def resolve_workspace(self) -> Workspace:
        return Workspace(self.workspace.resolve()) if self.workspace else Workspace.from_env()


# New files hashed and planned at a time: the paths, keys and shards held stay this many, however large the folder
# (ten million new files as one list of paths, keys and shard items would hold several GB before any embedding).
EMBED_CHUNK = 50_000


def embed_new_images(params: IndexParams, workspace: Workspace, chunk: int | None = None) -> int:
    """Put the vectors of the folder's new or changed images into the cache, for the champion's image encoder
    and the detector's; returns how many images were embedded. Nothing is embedded for files the cache has.
    The new files are taken `chunk` (default `EMBED_CHUNK`) at a time: hashed, planned into shards, embedded, added
    to the caches."""
    from tasks.embed.cache import EmbeddingCache, hash_files
    from tasks.embed.stage import plan_shards
    from tasks.safety.image_detector import ChildImageDetector
    from tasks.search.gallery import files_to_embed, indexing_champion

    logger = get_run_logger()
    champion = indexing_champion(workspace)
    encoders = [champion.image_encoder]
    detector = ChildImageDetector.load(workspace.detector_path).encoder_id
    encoders += [detector] if detector != champion.image_encoder else []
    names = files_to_embed(workspace, params.name, params.folder, champion.image_encoder)
    if not len(names):
        logger.info("no new or changed images in %s", params.folder)
        return 0
    chunk = chunk or EMBED_CHUNK
    chunks = (len(names) + chunk - 1) // chunk
    where = f"on the Dask cluster {params.dask_address}" if params.dask_address else "here"
    if chunks > 1:
        logger.info("%d new or changed images, %d at a time (%s) %s", len(names), chunk, " and ".join(encoders), where)
    caches = {encoder: EmbeddingCache.for_workspace(workspace, encoder) for encoder in encoders}
    done, started = 0, time.perf_counter()
    with shard_runner(params) as run_shards:
        for c, start in enumerate(range(0, len(names), chunk), start=1):
            paths = [params.folder / n for n in names[start : start + chunk]]
            keys, items = hash_files(paths), [str(p) for p in paths]
            del paths
            shards = [
                shard
                for encoder in encoders
                for shard in plan_shards("image", encoder, keys, items, caches[encoder], params.shard_size)
            ]
            del keys, items
            total, part_done = sum(len(s.keys) for s in shards), 0
            if chunks == 1:
                logger.info(
                    "%d new or changed images; %d embeddings to compute (%s) in %d shard(s) %s",
                    len(names), total, " and ".join(encoders), len(shards), where,
                )  # fmt: skip
            else:
                logger.info(
                    "part %d/%d (files %d-%d): %d embeddings to compute in %d shard(s)",
                    c, chunks, start + 1, min(start + chunk, len(names)), total, len(shards),
                )  # fmt: skip
            for i, result in enumerate(run_shards(shards), start=1):
                caches[result.encoder_id].add(list(result.keys), result.matrix)
                part_done += len(result.keys)
                done += len(result.keys)
                logger.info(
                    "shard %d/%d%s: %d images with %s in %.1f s on %s; %d of %d embedded (%.0f%%)%s, %.0f s so far",
                    i, len(shards), f" of part {c}/{chunks}" if chunks > 1 else "", len(result.keys),
                    result.encoder_id, result.seconds, result.worker, part_done, total, 100 * part_done / total,
                    f" ({done} in all)" if chunks > 1 else "", time.perf_counter() - started,
                )  # fmt: skip
    return done


@flow(name="imgsearch-index", description="Make a folder of images searchable: embed the new ones, flag, index.")
def index_flow(params: IndexParams) -> IndexSummary:
    workspace = params.resolve_workspace()
    embedded = embed_new_images(params, workspace)
    summary = index_gallery_task(
        params.folder, workspace, name=params.name, ann_params=params.ann, rebuild=params.rebuild
    )
    how = (
        "updated ({added} added, {removed} removed, {newly_hidden} newly hidden)".format(**summary.changes)
        if (summary.incremental)
        else "built"
    )
    get_run_logger().info(
        "index %r %s: %d searchable, %d hidden, %s search; %d images embedded by this run",
        params.name, how, summary.searchable, summary.flagged, summary.lookup, embedded,
    )  # fmt: skip
    return summary
