"""Indexing a folder of images for search with the champion's encoder and the child detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tasks.search.index import (
    GalleryIndex,
    SearchUnavailableError,
    build_gallery_index,
    folder_images,
    unchanged_files,
    update_gallery_index,
)
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.search.ann import AnnParams
    from tasks.search.names import ImageNames
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
    lookup: str = "exact"  # how it is searched: exact, ivf-flat or ivf-sq8
    incremental: bool = False  # updated in place of a rebuild (only new or changed files embedded)
    changes: dict[str, int] = field(default_factory=dict)  # added / removed / newly_hidden, when incremental


def indexing_champion(workspace: Workspace) -> ModelRecord:
    """The champion an index is built for; raises when the workspace lacks it or the child-image detector."""
    from tasks.training.registry import ModelRegistry

    champion = ModelRegistry(workspace).champion()
    if champion is None:
        raise SearchUnavailableError(f"no champion model in {workspace.models}; run `imgsearch run DATA_DIR` first")
    if not workspace.detector_path.is_file():
        raise SearchUnavailableError(
            f"no child-image detector at {workspace.detector_path}; run `imgsearch run DATA_DIR` first"
        )
    return champion


def index_folder(
    folder: Path,
    name: str = "gallery",
    workspace: Workspace | None = None,
    image_encoder: str | None = None,
    dataset_version: str = "",
    ann_params: AnnParams | None = None,
    rebuild: bool = False,
) -> IndexSummary:
    """Index `folder` with the champion's image encoder; the safety decision hides what it must.

    When the index `name` already holds this folder for the same champion and encoder, it is updated: only
    new or changed files are embedded and decided, removed ones leave it, and the IVF lists are added to
    instead of retrained. `rebuild` forces a build from scratch. The new index replaces the old one
    atomically; if anything fails the last good index stays."""
    from tasks.safety.policy import SafetyPolicy
    from tasks.training.registry import ModelRegistry

    workspace = workspace or Workspace.from_env()
    registry = ModelRegistry(workspace)
    champion = indexing_champion(workspace)
    image_encoder = image_encoder or champion.image_encoder
    same_features = champion.image_encoder == image_encoder
    model = registry.load(champion.version) if same_features else None
    policy, safety = SafetyPolicy.load(workspace), safety_version(workspace)
    with workspace.lock("index"):  # two updates of one index must not both start from the same old one
        previous = None if rebuild else _updatable(workspace, name, Path(folder), champion.version, image_encoder)
        changes: dict[str, int] = {}
        if previous is not None:
            gallery, changes = update_gallery_index(
                previous, workspace, policy, model, safety, dataset_version, ann_params
            )
        else:
            gallery = build_gallery_index(
                folder,
                workspace,
                image_encoder,
                policy,
                model=model,
                model_version=champion.version,
                dataset_version=dataset_version,
                safety_version=safety,
                ann_params=ann_params,
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
        lookup=str(gallery.ann.get("kind", "exact")),
        incremental=previous is not None,
        changes=changes,
    )


def _updatable(
    workspace: Workspace, name: str, folder: Path, model_version: str, image_encoder: str
) -> GalleryIndex | None:
    """The existing index `name` when it can be updated for `folder` rather than rebuilt, else None."""
    try:
        previous = GalleryIndex.load(workspace.index_dir(name))
    except SearchUnavailableError:
        return None
    same = (
        previous.folder == str(folder.resolve())
        and previous.model_version == model_version
        and previous.image_encoder == image_encoder
        and previous.ids is not None
        and previous.stamps is not None
        and (previous.projected is None or previous.projected_for == model_version)
    )
    return previous if same else None


def files_to_embed(workspace: Workspace, name: str, folder: Path, image_encoder: str) -> ImageNames:
    """The names (in `folder`) of the images an index run may have to embed: those the index `name` does not hold
    (as searchable or hidden) with the same size and mtime, or all of them when it holds another folder or encoder.
    An upper bound: the content-addressed cache still skips any file whose bytes it has seen. Names, not paths:
    ten million `Path` objects would take gigabytes."""
    folder = Path(folder).resolve()
    names, stamps = folder_images(folder)
    try:
        previous = GalleryIndex.load(workspace.index_dir(name))
    except SearchUnavailableError:
        previous = None
    if (
        previous is None
        or previous.folder != str(folder)
        or previous.image_encoder != image_encoder
        or previous.stamps is None
    ):
        return names
    _, kept, hidden, _ = unchanged_files(previous, names, stamps)
    return names.take(np.flatnonzero(~(kept | hidden)))


def read_index_meta(workspace: Workspace, name: str = "gallery") -> dict | None:
    """The index's `index.json`, or None when there is no index of that name."""
    import json

    path = workspace.index_dir(name) / "index.json"
    return json.loads(path.read_text()) if path.is_file() else None


def safety_version(workspace: Workspace) -> str:
    """Names the safety decision's inputs as they are now: the detector, its thresholds and the human flags."""
    from tasks.workspace import file_sha256, text_sha256

    detector = workspace.detector_path
    files = [detector, detector.with_suffix(".json"), workspace.caption_flags_path]
    return text_sha256(" ".join(file_sha256(f) if f.is_file() else "-" for f in files))[:16]


@dataclass(frozen=True)
class ReindexDecision:
    reindex: bool
    reason: str
    folder: str = ""  # "" = the run's own test images; else the folder the index already holds


def reindex_decision(
    champion: ModelRecord | None,
    index_meta: dict | None,
    promoted: bool,
    run_dataset: str,
    safety: str,
    ann: AnnParams | None = None,
) -> ReindexDecision:
    """Should a run rebuild the gallery index, from which folder, and why?

    Only when the champion changed (this run promoted it, or the index was built for another model), the
    safety decision did (a new detector or new human flags must hide what they hide, at once), or the run
    names lookup settings (`ann`) the index does not have (see `AnnParams.mismatch`). A rebuild for
    a new champion of this run takes the run's test images, unless the index holds a folder of its own
    (`imgsearch index DIR`); any other rebuild keeps the images the index holds. The run's test images never
    go behind a champion trained on another dataset: that is how a retrain once replaced the gallery and
    search scores fell to 0.006.
    """
    if champion is None:
        return ReindexDecision(False, "no champion model: nothing to index for")
    own_folder = ""
    if index_meta is not None and Path(index_meta.get("folder", "")).is_dir():
        own_folder = str(index_meta["folder"])
    custom = own_folder if index_meta is not None and not index_meta.get("dataset_version") else ""
    if promoted:
        return ReindexDecision(True, f"the champion changed to {champion.version}", custom)
    if index_meta is None or not own_folder:
        why = "there is no gallery index yet" if index_meta is None else "the gallery index's folder is gone"
        if champion.data_version != run_dataset:
            return ReindexDecision(
                False,
                f"{why}, but the champion {champion.version} was trained on dataset {champion.data_version} and this "
                f"run's dataset is {run_dataset}: its test images are not indexed (index a folder with "
                "`imgsearch index`)",
            )
        return ReindexDecision(True, why)
    stale = _stale(champion, index_meta, safety, ann)
    if stale:
        return ReindexDecision(True, stale, own_folder)
    return ReindexDecision(False, f"the gallery index is up to date for the champion {champion.version}")


def _stale(champion: ModelRecord, index_meta: dict, safety: str, ann: AnnParams | None = None) -> str:
    """Why an existing index no longer fits the champion, the safety decision or the run's lookup settings
    ("" when it does)."""
    if index_meta.get("model_version") != champion.version:
        built_for = index_meta.get("model_version") or "an unrecorded model"
        return f"the gallery index was built for {built_for}, not the champion {champion.version}"
    if index_meta.get("safety_version") != safety:
        return "the safety decision changed (detector or human flags)"
    # a champion without a two-tower projection is searched exactly whatever the settings: nothing to change
    if ann is not None and index_meta.get("projected_for"):
        why = ann.mismatch(index_meta.get("ann"), int(index_meta.get("searchable", 0)))
        if why:
            return f"the lookup settings changed: {why}"
    return ""


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
