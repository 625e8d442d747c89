"""The on-disk gallery index: vectors of the searchable images, and why the others are hidden."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.ingest.tables import is_jpeg_name
from tasks.workspace import Workspace, atomic_dir

if TYPE_CHECKING:
    from tasks.safety.policy import SafetyPolicy


class SearchUnavailableError(RuntimeError):
    """Search needs a champion model and a gallery index; says which is missing and how to make it."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties keep gallery order (stable)."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k == n:
        part = np.arange(n)
    elif n >= 100_000:
        import torch  # already loaded by the models; its top-k selection is about 3x faster than argpartition here

        part = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, sorted=False).indices.numpy()
    else:
        # argpartition on the scores themselves (no negated copy), then sort only the k winners
        part = np.argpartition(scores, n - k)[n - k :]
    order = np.lexsort((part, -scores[part]))
    return part[order]


@dataclass
class GalleryIndex:
    """What search needs about a folder of images. Flagged images carry no vectors and are never served.

    `embeddings` are the raw image-encoder vectors (memory-mapped on load, so a large gallery costs
    little resident memory); `projected` are the champion's own image vectors when it is a two-tower
    model, computed once at index time for model `projected_for`.
    """

    folder: str
    images: list[str]  # searchable (unflagged) images, row-aligned with the vectors
    embeddings: np.ndarray | None
    flagged: pd.DataFrame  # image, source ("captions" | "ratings" | "detector"), detail — kept for reports only
    image_encoder: str
    projected: np.ndarray | None = None
    projected_for: str = ""
    built: str = ""
    version: str = ""  # names this build of the index (the time it was built and a hash of what it holds)
    model_version: str = ""  # the champion it was built for ("" when built for no model)
    dataset_version: str = ""  # the dataset whose images it holds ("" for a folder that is no dataset's)
    safety_version: str = ""  # the detector and human flags its hidden images were decided with

    def path_of(self, image: str) -> str:
        return str(Path(self.folder) / image)

    def save(self, directory: Path) -> None:
        with atomic_dir(directory) as tmp:
            if self.embeddings is not None:
                np.save(tmp / "embeddings.npy", np.asarray(self.embeddings, dtype=np.float32))
            if self.projected is not None:
                np.save(tmp / "projected.npy", np.asarray(self.projected, dtype=np.float32))
            pd.DataFrame({"image": self.images}).to_parquet(tmp / "images.parquet", index=False)
            self.flagged.to_parquet(tmp / "flagged.parquet", index=False)
            meta = {
                "folder": self.folder,
                "image_encoder": self.image_encoder,
                "built": self.built,
                "projected_for": self.projected_for,
                "version": self.version,
                "model_version": self.model_version,
                "dataset_version": self.dataset_version,
                "safety_version": self.safety_version,
                "searchable": len(self.images),
                "flagged": len(self.flagged),
            }
            (tmp / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> GalleryIndex:
        """Read an index; a rebuild that replaces the folder while this reads it is detected, never half-read."""
        directory = Path(directory)
        if not (directory / "index.json").is_file():
            raise SearchUnavailableError(
                f"no gallery index at {directory}; run `imgsearch index DIR` (or `imgsearch run`) first"
            )
        try:
            first = (directory / "index.json").read_text()
            meta = json.loads(first)

            def vectors(name: str) -> np.ndarray | None:
                path = directory / name
                return np.load(path, mmap_mode="r") if path.is_file() else None

            index = cls(
                folder=meta["folder"],
                images=pd.read_parquet(directory / "images.parquet")["image"].tolist(),
                embeddings=vectors("embeddings.npy"),
                flagged=pd.read_parquet(directory / "flagged.parquet"),
                image_encoder=meta["image_encoder"],
                projected=vectors("projected.npy"),
                projected_for=meta.get("projected_for", ""),
                built=meta.get("built", ""),
                version=meta.get("version") or meta.get("built", ""),
                model_version=meta.get("model_version", ""),
                dataset_version=meta.get("dataset_version", ""),
                safety_version=meta.get("safety_version", ""),
            )
            again = (directory / "index.json").read_text()
        except (FileNotFoundError, OSError) as err:
            raise SearchUnavailableError(f"gallery index at {directory} changed while it was read ({err})") from err
        # `atomic_dir` swaps the whole folder: files read before and after a swap would belong to two builds.
        counts = {
            "images": len(index.images),
            "embeddings": len(index.embeddings) if index.embeddings is not None else len(index.images),
            "projected": len(index.projected) if index.projected is not None else len(index.images),
        }
        if (
            again != first
            or len(set(counts.values())) != 1
            or meta.get("searchable", len(index.images)) != len(index.images)
        ):
            raise SearchUnavailableError(f"gallery index at {directory} changed while it was read ({counts})")
        return index


def project_gallery(model, embeddings: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """A two-tower model's image vectors for a gallery, in chunks so memory stays bounded."""
    parts = [model.embed_images(np.asarray(embeddings[i : i + chunk])) for i in range(0, len(embeddings), chunk)]
    return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, 0), dtype=np.float32)


def build_gallery_index(
    folder: Path,
    workspace: Workspace,
    image_encoder_id: str,
    policy: SafetyPolicy,
    model=None,
    model_version: str = "",
    dataset_version: str = "",
    safety_version: str = "",
) -> GalleryIndex:
    """Embed every image in `folder` (through the cache), apply the safety decision, keep vectors of the rest."""
    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder

    folder = Path(folder).resolve()
    # JPEG only, as the dataset contracts accept: a gallery holds the kind of image the model was trained on
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and is_jpeg_name(p.name))
    if not names:
        raise ValueError(f"{folder}: no .jpg/.jpeg images to index")
    paths = [folder / n for n in names]
    embeddings = embed_image_files(paths, get_image_encoder(image_encoder_id), workspace).matrix
    detector_id = policy.detector.encoder_id
    features = (
        embeddings
        if detector_id == image_encoder_id
        else embed_image_files(paths, get_image_encoder(detector_id), workspace).matrix
    )
    decisions = policy.decide_files(paths, features)
    keep = ~decisions["hidden"].to_numpy(dtype=bool)
    projected = (
        project_gallery(model, embeddings[keep]) if model is not None and hasattr(model, "embed_images") else None
    )
    built = datetime.now(UTC)
    images = [n for n, k in zip(names, keep, strict=True) if k]
    content = hashlib.sha256(json.dumps([str(folder), images, model_version, image_encoder_id]).encode()).hexdigest()
    return GalleryIndex(
        folder=str(folder),
        images=images,
        embeddings=embeddings[keep],
        flagged=decisions.loc[~keep, ["image", "source", "detail"]].reset_index(drop=True),
        image_encoder=image_encoder_id,
        projected=projected,
        projected_for=model_version if projected is not None else "",
        built=built.isoformat(),
        version=f"{built:%Y%m%dT%H%M%S%f}-{content[:8]}",
        model_version=model_version,
        dataset_version=dataset_version,
        safety_version=safety_version,
    )
