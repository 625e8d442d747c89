"""Indexing a gallery folder for search: a plain function for the CLI and a Prefect task for the flow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from tasks.search.gallery import IndexSummary, index_folder, read_index_meta, reindex_decision, safety_version
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.search.ann import AnnParams


@task(name="index-gallery", cache_policy=NO_CACHE)
def index_gallery_task(
    folder: Path,
    workspace: Workspace,
    image_encoder: str | None = None,
    name: str = "gallery",
    dataset_version: str = "",
    ann_params: AnnParams | None = None,
    rebuild: bool = False,
) -> IndexSummary:
    summary = index_folder(folder, name, workspace, image_encoder, dataset_version, ann_params, rebuild)
    how = "updated" if summary.incremental else "built"
    create_markdown_artifact(
        key="gallery-index",
        markdown=(
            f"## Gallery index `{name}`\n\nFolder `{folder}`: {summary.searchable} searchable images, "
            f"{summary.flagged} hidden as showing children ({summary.flagged_by}); {how}, "
            f"{summary.lookup} search.\n"
        ),
        description="Search index of a folder of images",
    )
    return summary


class GalleryUpdate(BaseModel):
    """What a run did to the gallery index, and why."""

    reindexed: bool
    reason: str
    summary: IndexSummary | None = Field(default=None, description="The new index, when one was built")


@task(name="update-gallery", cache_policy=NO_CACHE)
def update_gallery_task(
    folder: Path,
    workspace: Workspace,
    dataset_version: str,
    promoted: bool,
    name: str = "gallery",
    ann_params: AnnParams | None = None,
) -> GalleryUpdate:
    """Rebuild the gallery index only when the champion, the safety decision or the asked-for lookup settings
    changed (see `reindex_decision`); `ann_params` None: automatic settings, and no reason to re-index."""
    from tasks.training.registry import ModelRegistry

    meta = read_index_meta(workspace, name)
    champion = ModelRegistry(workspace).champion()
    decision = reindex_decision(champion, meta, promoted, dataset_version, safety_version(workspace), ann_params)
    logger = get_run_logger()
    if not decision.reindex:
        (logger.warning if "not indexed" in decision.reason else logger.info)(
            "gallery not re-indexed: %s", decision.reason
        )
        create_markdown_artifact(
            key="gallery-index", markdown=f"## Gallery index `{name}`\n\nNot re-indexed: {decision.reason}.\n"
        )
        return GalleryUpdate(reindexed=False, reason=decision.reason)
    logger.info("re-indexing the gallery: %s", decision.reason)
    if decision.folder:  # the images the index already holds, with the dataset version they had
        source, version = Path(decision.folder), (meta or {}).get("dataset_version", "")
    else:
        source, version = folder, dataset_version
    summary = index_gallery_task.fn(source, workspace, name=name, dataset_version=version, ann_params=ann_params)
    return GalleryUpdate(reindexed=True, reason=decision.reason, summary=summary)
