"""Indexing a folder of images for search with the champion's encoder and the child detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks.search.index import SearchUnavailableError, build_gallery_index
from tasks.workspace import Workspace


@dataclass(frozen=True)
class IndexSummary:
    """What indexing a folder made searchable and what it hid."""

    name: str
    folder: str
    searchable: int
    flagged: int
    image_encoder: str
    flagged_by: dict[str, int] = field(default_factory=dict)  # "captions" / "detector" -> images
    version: str = ""  # the index build (index.json "version")
    model_version: str = ""  # the champion it was built for
    dataset_version: str = ""  # the dataset whose test images it holds ("" for any other folder)


def index_folder(
    folder: Path,
    name: str = "gallery",
    workspace: Workspace | None = None,
    image_encoder: str | None = None,
    dataset_version: str = "",
) -> IndexSummary:
    """Index `folder` with the champion's image encoder; the safety decision hides what it must."""
    from tasks.safety.policy import SafetyPolicy
    from tasks.training.registry import ModelRegistry

    workspace = workspace or Workspace.from_env()
    registry = ModelRegistry(workspace)
    champion = registry.champion()
    if champion is None:
        raise SearchUnavailableError(f"no champion model in {workspace.models}; run `imgsearch run DATA_DIR` first")
    image_encoder = image_encoder or champion.image_encoder
    same_features = champion.image_encoder == image_encoder
    model = registry.load(champion.version) if same_features else None
    if not workspace.detector_path.is_file():
        raise SearchUnavailableError(
            f"no child-image detector at {workspace.detector_path}; run `imgsearch run DATA_DIR` first"
        )
    gallery = build_gallery_index(
        folder,
        workspace,
        image_encoder,
        SafetyPolicy.load(workspace),
        model=model,
        model_version=champion.version,
        dataset_version=dataset_version,
    )
    gallery.save(workspace.index_dir(name))
    by_source = gallery.flagged["source"].value_counts().to_dict() if len(gallery.flagged) else {}
    return IndexSummary(
        name=name,
        folder=str(folder),
        searchable=len(gallery.images),
        flagged=len(gallery.flagged),
        image_encoder=image_encoder,
        flagged_by={str(k): int(v) for k, v in by_source.items()},
        version=gallery.version,
        model_version=gallery.model_version,
        dataset_version=gallery.dataset_version,
    )
