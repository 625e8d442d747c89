"""The on-disk gallery index: vectors of the searchable images, and why the others are hidden."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.ingest.tables import is_jpeg_name
from tasks.search.names import ImageNames, as_names, names_array
from tasks.workspace import Workspace, atomic_dir

if TYPE_CHECKING:
    from tasks.safety.policy import SafetyPolicy
    from tasks.search.ann import AnnParams

ANN_FILE = "ann.faiss"


class SearchUnavailableError(RuntimeError):
    """Search needs a champion model and a gallery index; says which is missing and how to make it."""


class IndexChangedError(SearchUnavailableError):
    """The gallery index folder was swapped while it was read: a moment later it reads whole."""


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
    images: Sequence[str]  # searchable (unflagged) images, row-aligned with the vectors (ImageNames once loaded)
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
    # Incremental updates: every image ever indexed gets an integer id, never reused, so a faiss index can
    # drop (or never return) exactly the removed and hidden ones. `ids` is row-aligned and strictly increasing.
    ids: np.ndarray | None = None
    next_id: int = 0
    # (size, mtime_ns) of each searchable file when it was embedded: a file replaced under the same name is
    # re-embedded and decided again, never served with the old file's vector.
    stamps: np.ndarray | None = None
    ann: dict = field(default_factory=dict)  # the lookup's settings (tasks.search.ann.ResolvedAnn.as_dict())
    ivf: Any = None  # faiss IVF index over `projected` keyed by `ids` (None: exact search)

    @property
    def row_ids(self) -> np.ndarray:
        return self.ids if self.ids is not None else np.arange(len(self.images), dtype=np.int64)

    def path_of(self, image: str) -> str:
        return str(Path(self.folder) / image)

    def save(self, directory: Path) -> None:
        with atomic_dir(directory) as tmp:
            if self.embeddings is not None:
                write_rows(tmp / "embeddings.npy", self.embeddings)
            if self.projected is not None:
                write_rows(tmp / "projected.npy", self.projected)
            columns = {"image": names_array(self.images), "id": pa.array(np.asarray(self.row_ids, dtype=np.int64))}
            if self.stamps is not None:
                columns["size"] = pa.array(np.ascontiguousarray(self.stamps[:, 0], dtype=np.int64))
                columns["mtime_ns"] = pa.array(np.ascontiguousarray(self.stamps[:, 1], dtype=np.int64))
            # no dictionary for names and ids (all distinct): at 10M it only cost memory (about 200 MB more)
            pq.write_table(pa.table(columns), tmp / "images.parquet", use_dictionary=["size", "mtime_ns"])
            if self.ivf is not None:
                from tasks.search.ann import write_ivf

                write_ivf(self.ivf, tmp / ANN_FILE)
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
                "next_id": max(self.next_id, int(self.row_ids[-1]) + 1 if len(self.images) else 0),
                "ann": self.ann or {"kind": "exact"},
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

            # read as Arrow, not pandas: 10M names stay one string array instead of 10M Python objects
            table = pq.read_table(directory / "images.parquet")
            columns = set(table.column_names)
            ann = meta.get("ann") or {"kind": "exact"}
            ivf = None
            if ann.get("kind", "exact") != "exact" and (directory / ANN_FILE).is_file():
                from tasks.search.ann import read_ivf

                ivf = read_ivf(directory / ANN_FILE)
            index = cls(
                folder=meta["folder"],
                images=ImageNames(table.column("image")),
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
                ids=table.column("id").to_numpy().astype(np.int64, copy=False) if "id" in columns else None,
                next_id=int(meta.get("next_id", len(table))),
                stamps=_stamps(table) if "mtime_ns" in columns else None,
                ann=ann,
                ivf=ivf,
            )
            again = (directory / "index.json").read_text()
            del table  # size and mtime were copied into `stamps`: let their buffers go
            pa.default_memory_pool().release_unused()  # the Arrow allocator keeps freed pages otherwise
        except (FileNotFoundError, OSError) as err:
            raise IndexChangedError(f"gallery index at {directory} changed while it was read ({err})") from err
        # `atomic_dir` swaps the whole folder: files read before and after a swap would belong to two builds.
        counts = {
            "images": len(index.images),
            "embeddings": len(index.embeddings) if index.embeddings is not None else len(index.images),
            "projected": len(index.projected) if index.projected is not None else len(index.images),
            "ids": len(index.row_ids),
        }
        if index.ivf is not None:  # its entries: one per image, plus removed ones left as tombstones
            counts["ivf"] = int(index.ivf.ntotal) - int((index.ann or {}).get("tombstones", 0))
        if (
            again != first
            or len(set(counts.values())) != 1
            or meta.get("searchable", len(index.images)) != len(index.images)
        ):
            raise IndexChangedError(f"gallery index at {directory} changed while it was read ({counts})")
        return index


def _stamps(table: pa.Table) -> np.ndarray:
    stamps = np.empty((table.num_rows, 2), dtype=np.int64)
    stamps[:, 0] = table.column("size").to_numpy()
    stamps[:, 1] = table.column("mtime_ns").to_numpy()
    return stamps


def write_rows(path: Path, vectors: np.ndarray) -> None:
    """`vectors` as a float32 .npy file, block by block: a memory-mapped source is streamed (never made resident)
    and no float32 copy of the whole array is made. A source that is a whole float32 .npy file on the same file
    system is hard-linked instead: saving an updated 10M-image gallery (`_concat_on_disk`) would otherwise write its
    15 GiB of 384-d vectors a second time. Index files are never written in place (`atomic_dir` swaps folders), so
    sharing the inode is safe."""
    from tasks.search.ann import _mapped_file, iter_rows

    mapped = _mapped_file(vectors)
    if mapped is not None and vectors.dtype == np.dtype("<f4"):
        source, offset = mapped
        if os.path.getsize(source) == offset + vectors.nbytes:
            try:
                os.link(source, path)
                return
            except OSError:  # another file system, links not allowed, or `path` exists: copy below
                pass
    shape = (len(vectors), *vectors.shape[1:])
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        for _, block in iter_rows(vectors):
            f.write(np.ascontiguousarray(block, dtype="<f4").data)


SPILL_BYTES = 2**30  # vectors a build, an update or a projection holds in memory; more go to a file on disk
_NPY_HEADER_BYTES = 128  # a fixed .npy header size, so the final row count can be written over the first


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header of float32 rows in `_NPY_HEADER_BYTES` bytes, whatever the shape's digits."""
    text = repr({"descr": "<f4", "fortran_order": False, "shape": tuple(int(n) for n in shape)}).encode("latin1")
    size = _NPY_HEADER_BYTES - 10  # after the magic string, the version and the header's own length
    if len(text) + 1 > size:
        raise ValueError(f"shape {shape} does not fit a {_NPY_HEADER_BYTES}-byte .npy header")
    return b"\x93NUMPY\x01\x00" + size.to_bytes(2, "little") + text + b" " * (size - len(text) - 1) + b"\n"


def spill_dir(vectors: np.ndarray) -> Path | None:
    """Where vectors derived from `vectors` go when they spill to disk: beside the index folder whose file
    `vectors` maps, on its file system, so that saving the next index hard-links the file (`write_rows`) instead
    of writing it again; None (the system's temporary folder) when `vectors` are in memory or that is read-only."""
    from tasks.search.ann import _mapped_file

    mapped = _mapped_file(vectors)
    near = Path(mapped[0]).parent.parent if mapped is not None else None
    return near if near is not None and os.access(near, os.W_OK) else None


class RowSink:
    """Float32 rows appended a block at a time, up to `capacity` of them: in memory while they fit in
    `spill_bytes` (`SPILL_BYTES` unless given), else in a temporary .npy file in `directory`, written with plain
    writes (pages in the page cache, not in this process) and memory-mapped read-only by `finish`. The file is
    deleted when that array is garbage-collected (or at exit), or at once if the sink is left with an error;
    saving an index hard-links it. A row's shape comes from the first block, or from `shape`.

    So a first build of ten million images never holds its shown images' encoder vectors (51 GB at Lite2's 1280
    floats) nor their projections (15 GiB at 384-d)."""

    def __init__(
        self,
        capacity: int,
        directory: Path | None = None,
        spill_bytes: int | None = None,
        shape: tuple[int, ...] | None = None,
    ):
        self.capacity, self.directory, self.rows = capacity, directory, 0
        self.spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        self.shape: tuple[int, ...] | None = None
        self._memory: np.ndarray | None = None
        self._file: Any = None
        self._name = ""
        if shape is not None:
            self._open(shape)

    def _open(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(n) for n in shape)
        if self.capacity * 4 * int(np.prod(self.shape, dtype=np.int64)) <= self.spill_bytes:
            self._memory = np.empty((self.capacity, *self.shape), dtype=np.float32)
            return
        fd, self._name = tempfile.mkstemp(prefix=".imgsearch-vectors-", suffix=".npy", dir=self.directory)
        self._file = os.fdopen(fd, "wb")
        self._file.write(_npy_header((0, *self.shape)))  # rewritten by `finish` with the row count

    def append(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if self.shape is None:
            self._open(block.shape[1:])
        assert self.shape is not None
        block = np.ascontiguousarray(block, dtype="<f4").reshape(-1, *self.shape)
        if self.rows + len(block) > self.capacity:
            raise ValueError(f"{self.rows + len(block)} rows appended to a sink for {self.capacity}")
        if self._file is not None:
            self._file.write(block.data)
        else:
            assert self._memory is not None
            self._memory[self.rows : self.rows + len(block)] = block
        self.rows += len(block)

    def finish(self) -> np.ndarray:
        """The rows appended, as one array (read-only and memory-mapped when they went to disk)."""
        if self.shape is None:
            raise ValueError("no rows were appended and no shape was given")
        if self._file is None:
            assert self._memory is not None
            return self._memory[: self.rows]
        self._file.seek(0)
        self._file.write(_npy_header((self.rows, *self.shape)))
        self._file.close()
        self._file = None
        out = np.load(self._name, mmap_mode="r")
        weakref.finalize(out, os.unlink, self._name)
        self._name = ""  # the array owns the file now
        return out

    def __enter__(self) -> RowSink:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._name:  # left before `finish`: nothing will map the file
            os.unlink(self._name)
            self._name = ""


def project_gallery(model, embeddings: np.ndarray, chunk: int = 50_000, directory: Path | None = None) -> np.ndarray:
    """A two-tower model's image vectors for a gallery, in chunks so memory stays bounded; to a file on disk
    (`RowSink`, in `directory` or beside the file `embeddings` map) when they would take more than `SPILL_BYTES`."""
    parts = (
        np.asarray(model.embed_images(np.asarray(embeddings[start : start + chunk])), dtype=np.float32)
        for start in range(0, len(embeddings), chunk)
    )
    if not len(embeddings):
        return np.zeros((0, 0), dtype=np.float32)
    with RowSink(len(embeddings), directory or spill_dir(embeddings)) as sink:
        for part in parts:
            sink.append(part)
        return sink.finish()


_LISTING_BATCH = 65_536  # names turned into Python strings at a time when the names of a listing are hashed


def folder_images(folder: Path) -> tuple[ImageNames, np.ndarray]:
    """The JPEG files of a folder, sorted by name, with their (size, mtime_ns) stamps.

    JPEG only, as the dataset contracts accept: a gallery holds the kind of image the model was trained on. One
    `scandir` pass and one `stat` a JPEG (the entry's type comes from the directory itself): no `Path` object a
    file, so a folder of a million images lists in seconds (bench/search.py --listing). The names are gathered as
    UTF-8 bytes and offsets that become one Arrow string array without a copy, and the stamps go into a typed
    array: about 70 bytes a file at the peak, where Python strings, ints and a sort of them took about 240 (a
    folder of 10M files took 2.3 GiB to list that way)."""
    import pyarrow.compute as pc

    text = bytearray()
    ends = array("i", [0])  # Arrow's int32 offsets: names up to 2 GiB in all
    stamps = array("q")  # size, mtime_ns, size, mtime_ns, ...
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_jpeg_name(entry.name) and entry.is_file():
                try:
                    text += entry.name.encode()
                except UnicodeEncodeError:
                    raise ValueError(
                        f"{entry.path!r}: the file name is not valid UTF-8; rename the file to index the folder"
                    ) from None
                if len(text) > _MAX_NAME_BYTES:
                    raise ValueError(f"{folder}: over 2 GiB of file names; split the folder to index it")
                ends.append(len(text))
                stat = entry.stat()
                stamps.append(stat.st_size)
                stamps.append(stat.st_mtime_ns)
    unsorted = pa.StringArray.from_buffers(len(ends) - 1, pa.py_buffer(ends), pa.py_buffer(text))
    order = pc.sort_indices(unsorted)
    names = unsorted.take(order)
    del unsorted, text, ends
    sorted_stamps = np.frombuffer(stamps, dtype=np.int64).reshape(-1, 2)[order.to_numpy()]
    return ImageNames(names), sorted_stamps


_MAX_NAME_BYTES = 2**31 - 1


DECIDE_CHUNK = 20_000  # files whose detector features are held at once while a folder is decided


def _decide(
    paths: list[Path],
    workspace: Workspace,
    image_encoder_id: str,
    policy: SafetyPolicy,
    directory: Path | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """(image-encoder vectors of the files not hidden, in order; the safety decision of every file), embedding
    only what the cache has not seen.

    In chunks of `DECIDE_CHUNK` files: the detector's features (5 x 1280 floats a file with the fine-tuned
    detector) of a chunk are dropped once it is decided, and so are the vectors of hidden files. The shown files'
    vectors go to a `RowSink`: in memory up to `SPILL_BYTES`, else to a file in `directory` (the workspace's index
    folder, so that saving the index links it), so ten million files never hold 51 GB of Lite2 vectors."""
    from tasks.embed.cache import EmbeddingCache, embed_image_files, hash_files
    from tasks.embed.encoders.registry import get_image_encoder

    encoder, detector_id = get_image_encoder(image_encoder_id), policy.detector.encoder_id
    detector = None if detector_id == image_encoder_id else get_image_encoder(detector_id)
    caches = {e: EmbeddingCache.for_workspace(workspace, e) for e in {image_encoder_id, detector_id}}
    decisions = []
    with RowSink(len(paths), directory) as shown:
        for start in range(0, max(len(paths), 1), DECIDE_CHUNK):  # no files: one empty chunk, decided as such
            chunk = paths[start : start + DECIDE_CHUNK]
            digests = hash_files(chunk)  # once for both encoders and the decision
            embeddings = embed_image_files(
                chunk, encoder, workspace, cache=caches[image_encoder_id], digests=digests
            ).matrix
            features = (
                embeddings
                if detector is None
                else embed_image_files(chunk, detector, workspace, cache=caches[detector_id], digests=digests).matrix
            )
            decided = policy.decide_files(chunk, features, digests)
            del features
            shown.append(embeddings[~decided["hidden"].to_numpy(dtype=bool)])
            decisions.append(decided)
        return shown.finish(), pd.concat(decisions, ignore_index=True)


def _flagged_rows(decisions: pd.DataFrame, stamps: np.ndarray) -> pd.DataFrame:
    hidden = decisions["hidden"].to_numpy(dtype=bool)
    rows = decisions.loc[hidden, ["image", "source", "detail"]].reset_index(drop=True)
    rows["size"], rows["mtime_ns"] = stamps[hidden, 0], stamps[hidden, 1]
    return rows


def _new_version(folder: Path, images: Sequence[str], model_version: str, image_encoder_id: str) -> tuple[str, str]:
    """(when built, a version naming the build time and the content); the names are hashed a batch at a time, so
    ten million of them never become one list and one JSON string (about 1 GiB)."""
    built = datetime.now(UTC)
    content = hashlib.sha256(json.dumps([str(folder), model_version, image_encoder_id]).encode())
    names = names_array(images)
    for start in range(0, len(names), _LISTING_BATCH):
        content.update(json.dumps(names.slice(start, _LISTING_BATCH).to_pylist()).encode())
    return built.isoformat(), f"{built:%Y%m%dT%H%M%S%f}-{content.hexdigest()[:8]}"


def build_gallery_index(
    folder: Path,
    workspace: Workspace,
    image_encoder_id: str,
    policy: SafetyPolicy,
    model=None,
    model_version: str = "",
    dataset_version: str = "",
    safety_version: str = "",
    ann_params: AnnParams | None = None,
) -> GalleryIndex:
    """Embed every image in `folder` (through the cache), apply the safety decision, keep vectors of the rest."""
    folder = Path(folder).resolve()
    names, stamps = folder_images(folder)
    if not names:
        raise ValueError(f"{folder}: no .jpg/.jpeg images to index")
    spill = workspace.index_root  # where the index is saved: large vectors spill there, and saving links them
    embeddings, decisions = _decide([folder / n for n in names], workspace, image_encoder_id, policy, spill)
    keep = ~decisions["hidden"].to_numpy(dtype=bool)
    two_tower = model is not None and hasattr(model, "embed_images")
    projected = project_gallery(model, embeddings, directory=spill) if two_tower else None
    images = names.take(np.flatnonzero(keep))
    built, version = _new_version(folder, images, model_version, image_encoder_id)
    index = GalleryIndex(
        folder=str(folder),
        images=images,
        embeddings=embeddings,
        flagged=_flagged_rows(decisions, stamps),
        image_encoder=image_encoder_id,
        projected=projected,
        projected_for=model_version if projected is not None else "",
        built=built,
        version=version,
        model_version=model_version,
        dataset_version=dataset_version,
        safety_version=safety_version,
        ids=np.arange(len(images), dtype=np.int64),
        next_id=len(images),
        stamps=stamps[keep],
    )
    return with_lookup(index, ann_params)


def with_lookup(index: GalleryIndex, ann_params: AnnParams | None = None) -> GalleryIndex:
    """The index with its lookup (re)built from scratch: exact, or an IVF index trained on its vectors."""
    from tasks.search.ann import AnnParams, build_ivf

    dim = 0 if index.projected is None else int(index.projected.shape[1])
    resolved = (ann_params or AnnParams()).resolve(len(index.images), dim)
    if index.projected is None or resolved.kind == "exact":
        # a model without a two-tower projection scores every image through the model: nothing to approximate
        exact = (ann_params or AnnParams()).resolve(0, dim)
        return replace(index, ann=exact.as_dict(), ivf=None)
    resolved = replace(resolved, trained_for=len(index.images))
    return replace(index, ann=resolved.as_dict(), ivf=build_ivf(index.projected, index.row_ids, resolved))


@dataclass(frozen=True)
class AddedImages:
    """Images that become searchable in an update, row-aligned."""

    images: Sequence[str]
    embeddings: np.ndarray | None
    projected: np.ndarray | None
    stamps: np.ndarray


def _concat(old: np.ndarray | None, keep: np.ndarray, new: np.ndarray | None, added: int) -> np.ndarray | None:
    """Kept rows of `old`, then `new` (`added` rows; None when nothing was added)."""
    from tasks.search.ann import _mapped_file

    if old is None or (new is None and added):
        return None
    if _mapped_file(old) is not None:  # read from disk (a large gallery): the next array goes to disk too
        return _concat_on_disk(old, keep, new)
    kept = old if bool(keep.all()) else old[keep]  # all kept: read the memory map once, no masked copy
    if new is None:  # only removals (or nothing changed): the vectors must stay, not vanish with the additions
        return np.array(kept, dtype=np.float32)  # a copy, as concatenate makes: not a view of the old files
    return np.concatenate(
        [np.asarray(kept, dtype=np.float32), np.asarray(new, dtype=np.float32).reshape(-1, old.shape[1])]
    )


def _concat_on_disk(old: np.ndarray, keep: np.ndarray, new: np.ndarray | None) -> np.ndarray:
    """`_concat` into a temporary .npy file beside the old index's folder (`RowSink`), memory-mapped: a 10M-image
    gallery (5 GiB at 128-d) is never held in memory."""
    from tasks.search.ann import iter_rows

    dim = old.shape[1:]
    extra = np.zeros((0, *dim), np.float32) if new is None else np.asarray(new, dtype=np.float32).reshape(-1, *dim)
    with RowSink(int(np.count_nonzero(keep)) + len(extra), spill_dir(old), spill_bytes=0, shape=dim) as out:
        for start, block in iter_rows(old):
            out.append(block[keep[start : start + len(block)]])
        out.append(extra)
        return out.finish()


def apply_changes(
    previous: GalleryIndex,
    keep: np.ndarray,
    added: AddedImages,
    flagged: pd.DataFrame,
    ann_params: AnnParams | None = None,
) -> GalleryIndex:
    """The next index: rows of `previous` where `keep`, then `added` under new ids; no rebuild when it can be helped.

    The IVF index of `previous` is updated in place (removed ids out, or left as tombstones where faiss cannot
    remove them, see `REMOVES_IN_PLACE`; new ones in), so `previous` must not be searched afterwards. It is
    retrained instead when the index kind changes, `nlist` is overridden, or the gallery grew or shrank by more
    than `RETRAIN_GROWTH` since it was trained.
    """
    from tasks.search.ann import (
        CANDIDATES,
        REMOVES_IN_PLACE,
        RETRAIN_GROWTH,
        TOMBSTONE_SHARE,
        AnnParams,
        ResolvedAnn,
        add_ivf,
        refill_ivf,
        remove_ivf,
    )

    keep = np.asarray(keep, dtype=bool)
    new_ids = np.arange(previous.next_id, previous.next_id + len(added.images), dtype=np.int64)
    everything = bool(keep.all())  # only additions: no masked copies of 10M-row arrays (names, ids, stamps)
    kept_names = as_names(previous.images) if everything else as_names(previous.images).take(np.flatnonzero(keep))
    old_stamps = previous.stamps if previous.stamps is not None else np.zeros((len(previous.images), 2), np.int64)
    index = replace(
        previous,
        images=kept_names.extend(added.images),
        embeddings=_concat(previous.embeddings, keep, added.embeddings, len(added.images)),
        projected=_concat(previous.projected, keep, added.projected, len(added.images)),
        ids=np.concatenate([previous.row_ids if everything else previous.row_ids[keep], new_ids]),
        next_id=previous.next_id + len(added.images),
        stamps=np.concatenate([old_stamps if everything else old_stamps[keep], added.stamps.reshape(-1, 2)]),
        flagged=flagged.reset_index(drop=True),
        ivf=None,
    )
    params = ann_params or AnnParams()
    dim = 0 if index.projected is None else int(index.projected.shape[1])
    old, wanted = ResolvedAnn.from_dict(previous.ann), params.resolve(len(index.images), dim)
    n = len(index.images)
    reusable = (
        previous.ivf is not None
        and index.projected is not None
        and params.keeps_kind(old.kind, wanted.kind)
        and (params.nlist is None or params.nlist == old.nlist)
        and (params.pq_bytes is None or params.pq_bytes == old.pq_bytes)
        and old.trained_for / RETRAIN_GROWTH <= n <= old.trained_for * RETRAIN_GROWTH
    )
    if not reusable:
        return with_lookup(index, params)
    removed, tombstones = previous.row_ids[~keep], old.tombstones
    if old.kind in REMOVES_IN_PLACE:
        remove_ivf(previous.ivf, removed)
    else:  # left in the lists; the lookup drops ids the gallery no longer holds
        tombstones += len(removed)
    if tombstones > TOMBSTONE_SHARE * (previous.ivf.ntotal + len(added.images)):
        assert index.projected is not None  # checked by `reusable`
        refill_ivf(previous.ivf, index.projected, index.row_ids)
        tombstones = 0
    elif added.projected is not None and len(added.images):
        add_ivf(previous.ivf, added.projected, new_ids)
    ann = replace(
        old,
        nprobe=min(params.nprobe or old.nprobe, old.nlist),
        candidates=params.candidates or CANDIDATES.get(old.kind, wanted.candidates),
        dim=dim or old.dim,
        tombstones=tombstones,
    )
    return replace(index, ann=ann.as_dict(), ivf=previous.ivf)


_JOIN_CHUNK = 1_000_000  # names of a sorted side hashed at a time in a join (`_rows_in`)


def _rows_in(names: Sequence[str], among: Sequence[str] | pa.Array) -> np.ndarray:
    """Row of each of `names` in `among` (names unique in each), -1 where it is absent: Arrow hash joins, no
    Python object a name (a dict of a 1M-image folder's names and stamps took 6 s and 300 MiB).

    Arrow's hash table over ten million names took about 1.1 GiB, so it is built over the smaller side, and over
    a sorted `among` (a folder listing) a million names at a time: each slice is joined with the names that fall
    between its first and last."""
    import pyarrow.compute as pc

    keys, value_set = names_array(names), among if isinstance(among, pa.Array) else names_array(among)
    out = np.full(len(keys), -1, dtype=np.int64)
    if not len(keys) or not len(value_set):
        return out
    if len(value_set) > _JOIN_CHUNK and _is_sorted(value_set):
        for start in range(0, len(value_set), _JOIN_CHUNK):
            part = value_set.slice(start, _JOIN_CHUNK)
            within = pc.and_(pc.greater_equal(keys, part[0]), pc.less_equal(keys, part[-1]))
            where = np.flatnonzero(within.to_numpy(zero_copy_only=False))
            if len(where):
                rows = _index_in(keys.take(pa.array(where)), part)
                hit = rows >= 0
                out[where[hit]] = rows[hit] + start
        return out
    return _index_in(keys, value_set)


def _index_in(keys: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Row of each key in `value_set`, -1 where absent; the hash table is built over the smaller side."""
    import pyarrow.compute as pc

    if len(keys) < len(value_set) and pc.count_distinct(keys).as_py() == len(keys):
        position = pc.index_in(value_set, value_set=keys).fill_null(-1).to_numpy(zero_copy_only=False)
        out = np.full(len(keys), -1, dtype=np.int64)
        hit = position >= 0
        out[position[hit]] = np.flatnonzero(hit)
        return out
    return np.asarray(pc.index_in(keys, value_set=value_set).fill_null(-1).to_numpy(zero_copy_only=False), np.int64)


def _is_sorted(names: pa.Array) -> bool:
    import pyarrow.compute as pc

    return len(names) < 2 or bool(pc.all(pc.less(names.slice(0, len(names) - 1), names.slice(1))).as_py())


def _unchanged(
    names: Sequence[str], stamps: np.ndarray, now: pa.Array, now_stamps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(whether each of `names`, stamped `stamps`, is still in the listing `now` with the same size and mtime,
    its row in `now` or -1)."""
    rows = _rows_in(names, now)
    same = rows >= 0
    same[same] = np.all(now_stamps[rows[same]] == np.asarray(stamps, dtype=np.int64)[same], axis=1)
    return same, rows


def unchanged_files(
    previous: GalleryIndex, names: Sequence[str], stamps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a folder listing (`folder_images`) still shares with `previous`, as masks:
    (over `previous.images`: listed with the same stamps; over the listing: searchable in `previous` with the
    same stamps, hidden in `previous` with the same stamps; over `previous.flagged`: listed with the same stamps).
    """
    listed = names_array(names)
    old_stamps = previous.stamps if previous.stamps is not None else np.full((len(previous.images), 2), -1)
    keep, rows = _unchanged(previous.images, old_stamps, listed, stamps)
    kept = np.zeros(len(listed), dtype=bool)
    kept[rows[keep]] = True
    flagged = previous.flagged
    still = np.zeros(len(flagged), dtype=bool)
    hidden = np.zeros(len(listed), dtype=bool)
    if "mtime_ns" in flagged:
        hidden_stamps = flagged[["size", "mtime_ns"]].to_numpy(dtype=np.int64)
        still, rows = _unchanged(list(flagged["image"]), hidden_stamps, listed, stamps)
        hidden[rows[still]] = True
    return keep, kept, hidden, still


def update_gallery_index(
    previous: GalleryIndex,
    workspace: Workspace,
    policy: SafetyPolicy,
    model=None,
    safety_version: str = "",
    dataset_version: str | None = None,
    ann_params: AnnParams | None = None,
) -> tuple[GalleryIndex, dict[str, int]]:
    """Bring `previous` up to date with its folder: embed and decide only new or changed files, drop removed ones.

    When the safety decision changed (`safety_version`), every file is decided again (vectors from the cache),
    so a newly flagged image leaves the index and one no longer flagged comes back. Returns the new index and
    counts of what changed."""
    folder = Path(previous.folder)
    names, stamps = folder_images(folder)
    if not names:
        raise ValueError(f"{folder}: no .jpg/.jpeg images to index")
    redecide_all = previous.safety_version != safety_version
    keep, kept, hidden_before, still = unchanged_files(previous, names, stamps)
    if redecide_all:
        still_hidden = previous.flagged.iloc[0:0]
        todo = np.arange(len(names))
    else:
        still_hidden = previous.flagged.loc[still]
        todo = np.flatnonzero(~(kept | hidden_before))
    added = AddedImages([], None, None, np.zeros((0, 2), np.int64))
    newly_hidden = 0
    if len(todo):
        todo_names = names.take(todo)
        paths = [folder / name for name in todo_names]
        embeddings, decisions = _decide(paths, workspace, previous.image_encoder, policy, workspace.index_root)
        hidden = decisions["hidden"].to_numpy(dtype=bool)
        newly_hidden = int(kept[todo[hidden]].sum())
        gone = _rows_in(todo_names.take(np.flatnonzero(hidden)), previous.images)
        keep[gone[gone >= 0]] = False
        fresh = ~hidden & ~kept[todo]
        vectors = embeddings[~kept[todo][~hidden]]  # `embeddings` are the shown files' rows
        projected = project_gallery(model, vectors) if model is not None and hasattr(model, "embed_images") else None
        added = AddedImages(todo_names.take(np.flatnonzero(fresh)), vectors, projected, stamps[todo][fresh])
        still_hidden = pd.concat([still_hidden, _flagged_rows(decisions, stamps[todo])], ignore_index=True)
    removed = int((~keep).sum())
    index = apply_changes(previous, keep, added, still_hidden, ann_params)
    built, version = _new_version(folder, index.images, previous.model_version, previous.image_encoder)
    index = replace(
        index,
        built=built,
        version=version,
        safety_version=safety_version,
        dataset_version=previous.dataset_version if dataset_version is None else dataset_version,
    )
    return index, {"added": len(added.images), "removed": removed - newly_hidden, "newly_hidden": newly_hidden}
