"""Indexing a folder of images for search with the champion's encoder and the child detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.search.index import SearchUnavailableError, build_gallery_index
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.training.registry import ModelRecord


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


def read_index_meta(workspace: Workspace, name: str = "gallery") -> dict | None:
    """The index's `index.json`, or None when there is no index of that name."""
    import json

    path = workspace.index_dir(name) / "index.json"
    return json.loads(path.read_text()) if path.is_file() else None


def reindex_decision(
    champion: ModelRecord | None, index_meta: dict | None, promoted: bool, run_dataset: str
) -> tuple[bool, str]:
    """Should a run re-index the gallery from its own test images? (yes or no, and why)

    Only when the champion changed: this run promoted it, or the index is missing or was built for another
    model. Never from a dataset other than the champion's: its test images next to a model trained on other
    data is how a retrain once replaced the gallery and scores fell to 0.006.
    """
    if champion is None:
        return False, "no champion model: nothing to index for"
    if promoted:
        return True, f"the champion changed to {champion.version}"
    if index_meta is None:
        why = "there is no gallery index yet"
    elif index_meta.get("model_version") != champion.version:
        built_for = index_meta.get("model_version") or "an unrecorded model"
        why = f"the gallery index was built for {built_for}, not the champion {champion.version}"
    else:
        return False, f"the gallery index is up to date for the champion {champion.version}"
    if champion.data_version != run_dataset:
        return False, (
            f"{why}, but the champion {champion.version} was trained on dataset {champion.data_version} and this "
            f"run's dataset is {run_dataset}: its test images are not indexed (index a folder with `imgsearch index`)"
        )
    return True, why


def dataset_mix_warning(champion: ModelRecord | None, run_dataset: str, data_dir: Path) -> str | None:
    """A warning when a run's dataset is not the one the workspace's champion was trained on (None otherwise)."""
    if champion is None or champion.data_version == run_dataset:
        return None
    return (
        f"mixing datasets in one workspace: the champion {champion.version} was trained on dataset "
        f"{champion.data_version}, this run uses dataset {run_dataset} ({data_dir}); its model is compared with "
        "the champion on this run's data, and the gallery changes only if it wins. Use a separate IMGSEARCH_HOME "
        "per dataset unless this is a new delivery of the same data."
    )
