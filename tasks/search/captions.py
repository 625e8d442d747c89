"""The human captions of gallery images, for the search page's "why this scored": what people wrote about a picture.

Captions come from the dataset the gallery belongs to (its own, else the champion's) and vouch for a file only
when its bytes are the image they were written for, the rule the safety decision uses. Only searchable images
are ever asked about; an image with any caption the text screen flags shows none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.workspace import Workspace

MAX_CAPTIONS_SHOWN = 5  # the course data has five per image; more would crowd the enlarged view


def captions_by_image(texts: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """image -> its own captions (query_id `<image>#<n>`, in n order), from a frame of query_id, query_text."""
    from tasks.ingest.tables import caption_image

    if texts.empty:
        return {}
    frame = texts.drop_duplicates("query_id").assign(image=lambda f: caption_image(f["query_id"]))
    frame = frame.sort_values("query_id", kind="stable")
    return {str(image): tuple(str(t) for t in group["query_text"]) for image, group in frame.groupby("image")}


@dataclass
class GalleryCaptions:
    """Own captions of a gallery folder's images, checked against the bytes they were written for."""

    folder: Path
    by_image: dict[str, tuple[str, ...]]
    recorded_sha256: dict[str, str]  # image -> sha256 of the dataset file its captions describe
    _checked: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def empty(cls, folder: Path) -> GalleryCaptions:
        return cls(Path(folder), {}, {})

    @classmethod
    def load(cls, workspace: Workspace, dataset_version: str, folder: Path, human_flags: pd.DataFrame | None):
        """The captions of `dataset_version`'s prepared tables; none when the version or the hashes are missing."""
        prepared = workspace.datasets / dataset_version if dataset_version else None
        if prepared is None or human_flags is None or "sha256" not in human_flags:
            return cls.empty(folder)
        tables = [prepared / "train.parquet", prepared / "queries.parquet"]
        frames = [pd.read_parquet(p, columns=["query_id", "query_text"]) for p in tables if p.is_file()]
        if not frames:
            return cls.empty(folder)
        known = human_flags.dropna(subset=["sha256"]).drop_duplicates("image")
        return cls(
            Path(folder),
            captions_by_image(pd.concat(frames, ignore_index=True)),
            dict(zip(known["image"].astype(str), known["sha256"].astype(str), strict=True)),
        )

    def of(self, names: Sequence[str], is_flagged: Callable[[list[str]], list[bool]]) -> dict[str, list[str]]:
        """Captions of `names` whose files are the captioned bytes and whose captions pass `is_flagged` (none
        flagged); other names map to []."""
        from tasks.embed.cache import hash_files

        with self._lock:
            todo = [n for n in names if n in self.by_image and n in self.recorded_sha256 and n not in self._checked]
        if todo:
            present = [n for n in todo if (self.folder / n).is_file()]
            try:
                digests = dict(zip(present, hash_files([self.folder / n for n in present]), strict=True))
            except OSError:  # a file went away while it was read: show no captions for these
                digests = {}
            with self._lock:
                self._checked.update({n: digests.get(n) == self.recorded_sha256[n] for n in todo})
        out: dict[str, list[str]] = {}
        for name in names:
            captions = list(self.by_image.get(name, ())) if self._checked.get(name) else []
            if captions and any(is_flagged(captions)):
                captions = []
            out[name] = captions[:MAX_CAPTIONS_SHOWN]
        return out
