"""The one module that owns the on-disk layout: workspace root, its sub-folders, atomic writes.

Nothing else in the project builds workspace paths by hand; ask a `Workspace` instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_HOME = "IMGSEARCH_HOME"
DEFAULT_HOME = Path("~/.imgsearch")
VERSION_CHARS = 16  # a dataset version is the head of its content hash: short to read, long enough to be unique


def workspace_root() -> Path:
    """Read the workspace root from the environment when called (never at import time)."""
    return Path(os.environ.get(ENV_HOME, str(DEFAULT_HOME))).expanduser().resolve()


def dataset_version(data_hash: str) -> str:
    """The name of a dataset version (its folder under `datasets/`) from the dataset's content hash."""
    return data_hash[:VERSION_CHARS]


class _Folder:
    """A workspace folder as a read-only attribute: `Workspace.inbox` is `<root>/inbox`, made on first access."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, workspace: Workspace, owner: type | None = None) -> Path:
        return workspace._dir(*self.parts)


@dataclass(frozen=True)
class Workspace:
    """Paths under one workspace root. Creating the object makes no directories."""

    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        return cls(workspace_root())

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # The folders of the layout (the README's workspace table); each is made when first asked for.
    reports = _Folder("reports")
    data_docs = _Folder("reports", "data_docs")  # GX Data Docs of every validation
    datasets = _Folder("datasets")
    models = _Folder("models")
    quarantine = _Folder("quarantine")
    inbox = _Folder("inbox")  # where new crowd or expert rating files are dropped
    inbox_archive = _Folder("inbox", "archive")
    ratings_batches = _Folder("ratings", "batches")  # the append-only ratings store: one Parquet file per batch
    samples = _Folder("samples")
    index_root = _Folder("index")  # the gallery indexes, one folder each (`index_dir`)

    def eda_dir(self, version: str) -> Path:
        """EDA report (PNGs + report.html) of one dataset version."""
        return self._dir("reports", "eda", version)

    def dataset_versions(self) -> list[Path]:
        """Prepared dataset versions (folders with a summary.json), newest first."""
        found = [
            p
            for p in self.datasets.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "summary.json").is_file()
        ]
        return sorted(found, key=lambda p: (p / "summary.json").stat().st_mtime, reverse=True)

    def dataset_dir(self, version: str) -> Path:
        return self._dir("datasets", version)

    def index_dir(self, name: str) -> Path:
        """A gallery index; the folder itself appears only when the index is written (atomically)."""
        return self.index_root / name

    @property
    def caption_flags_path(self) -> Path:
        """Human evidence per image: own captions (count, flagged) and rating labels (written by the pipeline)."""
        return self._dir("safety") / "caption_image_flags.parquet"

    @property
    def last_retrain_path(self) -> Path:
        """What the last good retrain trained on (ratings-store version, dataset, parameters): a queued retrain
        with nothing new ends at once instead of training again."""
        return self._dir("ratings") / "last_retrain.json"

    def read_last_retrain(self) -> dict | None:
        path = self.last_retrain_path
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):  # none yet, or unreadable: then the retrain just runs
            return None

    def write_last_retrain(self, record: dict) -> Path:
        return write_json_atomic(self.last_retrain_path, record)

    @property
    def detector_path(self) -> Path:
        """The child-image detector with its thresholds (it names the image encoder whose features it reads)."""
        return self._dir("safety") / "child-detector.joblib"

    @property
    def tuned_detector_dir(self) -> Path:
        """Fine-tuned child detectors: weights files by encoder id, and fits by the hash of what they learned from."""
        return self._dir("safety", "tuned")

    def embedding_cache_dir(self, encoder_id: str) -> Path:
        """Parquet parts of one encoder's embedding cache. The folder name is readable and collision-free:
        a slug of the id plus a short hash of the exact id (ids may contain '/' or differ only in case)."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._") or "encoder"
        return self._dir("cache", "embeddings", f"{slug[:60]}-{text_sha256(encoder_id)[:8]}")

    def lock_path(self, name: str) -> Path:
        """The lock file of one workspace-wide critical section (see `lock`)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"lock name {name!r}: use letters, digits, '.', '_' or '-'")
        return self._dir("locks") / f"{name}.lock"

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock named `name` over this workspace: the project's one lock API.

        An fcntl lock on `locks/<name>.lock`, freed by the kernel if the holder dies, so a crash never leaves
        a stale lock. Separate opens block each other, so threads of one process take turns too. Holders:
        `training` (the body of retrain and backfill), `registry` (promotion), `ratings-store` (inbox merges).
        """
        with open(self.lock_path(name), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def embedding_quarantine_dir(self, encoder_id: str) -> Path:
        """Where unreadable cache parts are moved for inspection before the cache rebuilds them."""
        return self._dir("quarantine", "embeddings", self.embedding_cache_dir(encoder_id).name)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds.

    A crash or an exception inside the block leaves the previous `target` untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_json_atomic(target: Path, payload: Any) -> Path:
    return write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(target: Path, frame: Any) -> Path:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return target


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
