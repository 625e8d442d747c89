"""Indexing a gallery folder for search: a plain function for the CLI and a Prefect task for the flow."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.search.gallery import IndexSummary, index_folder
from tasks.workspace import Workspace


@task(name="index-gallery", cache_policy=NO_CACHE)
def index_gallery_task(
    folder: Path, workspace: Workspace, image_encoder: str | None = None, name: str = "gallery"
) -> IndexSummary:
    summary = index_folder(folder, name, workspace, image_encoder)
    create_markdown_artifact(
        key="gallery-index",
        markdown=(
            f"## Gallery index `{name}`\n\nFolder `{folder}`: {summary.searchable} searchable images, "
            f"{summary.flagged} hidden as showing children ({summary.flagged_by}).\n"
        ),
        description="Search index built from the test images",
    )
    return summary
