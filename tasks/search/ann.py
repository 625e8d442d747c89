"""Nearest-neighbour lookup over a gallery's two-tower vectors: exact for small galleries, faiss IVF for large ones.

Both kinds answer `search(query, k) -> (rows, cosines)` with rows of the gallery's searchable arrays, so the
searcher does not care which it has. The IVF kinds probe a fraction of the lists for `candidates * k` ids and
re-score those exactly from the stored (memory-mapped) vectors; an id the gallery no longer holds is dropped
before re-scoring, so only searchable images can come back, whatever the faiss index still contains.
"""

from __future__ import annotations

import math
import mmap
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tasks.search.index import top_k

IndexKind = Literal["auto", "exact", "ivf-flat", "ivf-sq8", "ivf-pq", "ivf-fastscan"]
# Below this many images the exact matrix product is as fast as IVF and needs no training (bench/search.py --scale).
EXACT_BELOW = 200_000
# An IVF index trained for n images keeps working when the gallery grows, but its lists get long; past this
# growth factor an update retrains it instead of adding to it.
RETRAIN_GROWTH = 4.0
TRAIN_POINTS_PER_LIST = 64  # k-means sample: faiss warns below 39 per centroid, more buys little recall
MIN_TRAIN_POINTS_PER_LIST = 39
TRAIN_SAMPLE_BYTES = 512 * 2**20  # the training sample shrinks towards 39 a list when 64 would take more
# Auto picks 8-bit codes while they take at most this much memory (dimension bytes an image), fast-scan
# product-quantized codes past it: at 384-d (MiniLM's space, the locked text tower) from 4.2M images on; at 128-d
# from 12.6M. At 10M 384-d, 800 probes: ivf-fastscan 12.7 ms at recall@10 0.967, ivf-pq 33.1 ms at 0.954.
SQ8_CODE_BUDGET = 3 << 29  # 1.5 GiB
# Product quantization: one byte per 4 dimensions (96 bytes an image at 384-d). On 300k clustered 384-d vectors
# (probing 1/8, recall ceiling 0.983) 48-byte codes found recall@10 0.731 with 10 candidates a result and 0.921 with
# 40; 96-byte codes 0.963 and 0.983; 8-bit codes 0.983 with 4.
PQ_DIMS_PER_CODE = 4
# ivf-fastscan: the same bytes an image as ivf-pq, as twice as many 4-bit codes (16 centroids each) that faiss's
# fast-scan compares with SIMD lookups in registers. On 1M clustered 384-d vectors (4000 lists, one thread) 96-byte
# 8-bit codes probing 500 lists and re-scoring 200 candidates: 7.5 ms at recall@10 0.986; 4-bit fast-scan codes of the
# same size re-scoring 1000: 2.9 ms at 0.988 (coarser distances, so more candidates; the scan is 4 times as fast).
PQ_KINDS = {"ivf-pq": 1, "ivf-fastscan": 2}  # PQ kinds -> sub-quantizers a byte
# faiss 1.15's `remove_ids` on fast-scan lists (codes packed in blocks of 32) corrupts them: after 250 of 2500 ids
# were removed, 10 of 20 vectors added next were not found with a quarter of the lists probed. So removing images
# from an ivf-fastscan index leaves their ids in the lists as tombstones (the lookup drops any id the gallery no
# longer holds, for every kind), and once tombstones pass `TOMBSTONE_SHARE` of the entries, the lists are emptied
# and refilled from the gallery's vectors, without retraining.
REMOVES_IN_PLACE = {"ivf-flat", "ivf-sq8", "ivf-pq"}
TOMBSTONE_SHARE = 0.1
# Each PQ codebook has 256 codes trained by k-means: below this many images ivf-pq falls back to ivf-sq8.
PQ_MIN_IMAGES = 1000
PQ_TRAIN_POINTS = 10_000  # at least this many training points for the codebooks (faiss asks for 39 a code)
# Candidates re-scored exactly per result: PQ distances are coarser than 8-bit ones, so it re-scores more, and
# 4-bit ones more again.
CANDIDATES = {"ivf-flat": 4, "ivf-sq8": 4, "ivf-pq": 20, "ivf-fastscan": 100}


class AnnParams(BaseModel):
    """How the gallery is searched; anything left empty is set from the gallery size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IndexKind = Field(
        default="auto",
        description="auto: exact below `exact_below` images, else ivf-sq8 while its codes fit 1.5 GiB, else "
        "ivf-fastscan",
    )
    nlist: int | None = Field(default=None, ge=1, description="IVF lists (default about 4*sqrt(n))")
    nprobe: int | None = Field(default=None, ge=1, description="IVF lists probed per query (default nlist/8)")
    candidates: int | None = Field(
        default=None, ge=1, le=100, description="IVF candidates per result, re-scored exactly (default 4, ivf-pq 20)"
    )
    pq_bytes: int | None = Field(
        default=None, ge=1, description="ivf-pq code bytes an image (default dimension/4; must divide the dimension)"
    )
    exact_below: int = Field(default=EXACT_BELOW, ge=0, description="auto picks exact search below this size")

    def resolve(self, n: int, dim: int = 0) -> ResolvedAnn:
        """Concrete settings for a gallery of `n` searchable `dim`-dimensional vectors."""
        kind = self.kind
        if kind == "auto":
            kind = "exact" if n < self.exact_below else "ivf-fastscan" if n * dim > SQ8_CODE_BUDGET else "ivf-sq8"
        if kind in PQ_KINDS and n < PQ_MIN_IMAGES:
            kind = "ivf-sq8"
        if kind == "exact" or n == 0:
            return ResolvedAnn("exact", 0, 0, self.candidates or CANDIDATES["ivf-sq8"], dim=dim)
        # 4*sqrt(n) lists probed 1/8 at a time: at 1M clustered vectors recall@10 0.989 in 3.3 ms, where
        # sqrt(n) lists needed a quarter probed (8.9 ms) for 0.98+; never more lists than the data can train
        nlist = self.nlist or max(1, round(4 * math.sqrt(n)))
        nlist = max(1, min(nlist, n // MIN_TRAIN_POINTS_PER_LIST or 1))
        nprobe = min(self.nprobe or max(1, math.ceil(nlist / 8)), nlist)
        per_byte = PQ_KINDS.get(kind, 0)
        pq_bytes = (self.pq_bytes or pq_code_bytes(dim, per_byte)) if per_byte else 0
        if pq_bytes and dim and dim % (pq_bytes * per_byte):
            what = "pq_bytes" if per_byte == 1 else f"{per_byte} × pq_bytes ({per_byte * pq_bytes} 4-bit codes)"
            raise ValueError(f"{what} must divide the vectors' dimension {dim} ({kind}, pq_bytes {pq_bytes})")
        return ResolvedAnn(kind, nlist, nprobe, self.candidates or CANDIDATES[kind], dim=dim, pq_bytes=pq_bytes)

    def keeps_kind(self, built: str, wanted: str) -> bool:
        """Whether an index built as `built` serves settings that resolve to `wanted`. Auto chose ivf-pq past the
        8-bit budget before it chose ivf-fastscan; an index it built then is kept until a kind is asked for."""
        return built == wanted or (self.kind == "auto" and built in PQ_KINDS and wanted in PQ_KINDS)

    def mismatch(self, current: dict | None, n: int) -> str:
        """Why an index of `n` images searched with `current` (index.json "ann") is not what these parameters ask
        for ("" when it is). Mirrors what an update keeps: the kind, an explicit `nlist` and `pq_bytes` need a new
        lookup, an explicit `nprobe` and `candidates` are applied without retraining."""
        old = ResolvedAnn.from_dict(current)
        wanted = self.resolve(n, old.dim)
        if not self.keeps_kind(old.kind, wanted.kind):
            return f"the index is searched {old.kind}, the run asks for {wanted.kind}"
        if wanted.kind == "exact":
            return ""
        nprobe = None if self.nprobe is None else min(self.nprobe, old.nlist)
        differences = (
            (self.nlist, wanted.nlist, old.nlist, f"the index has {old.nlist} IVF lists"),
            (self.pq_bytes, wanted.pq_bytes, old.pq_bytes, f"the index has {old.pq_bytes}-byte codes"),
            (nprobe, nprobe, old.nprobe, f"the index probes {old.nprobe} lists"),
            (self.candidates, self.candidates, old.candidates, f"the index re-scores {old.candidates} candidates"),
        )
        for asked, want, have, what in differences:
            if asked is not None and want != have:
                return f"{what}, the run asks for {want}"
        return ""


def pq_code_bytes(dim: int, per_byte: int = 1) -> int:
    """The default PQ code size: one byte per `PQ_DIMS_PER_CODE` dimensions, rounded so that the byte's `per_byte`
    sub-quantizers (1: 8-bit codes, 2: 4-bit) split `dim` evenly."""
    if dim <= 0:
        return 0
    want = max(1, round(dim / PQ_DIMS_PER_CODE))
    fits = [b for b in range(1, dim // per_byte + 1) if dim % (b * per_byte) == 0]
    if not fits:
        raise ValueError(f"{per_byte} sub-quantizers a byte cannot split {dim} dimensions")
    return min(fits, key=lambda b: (abs(b - want), -b))


@dataclass(frozen=True)
class ResolvedAnn:
    kind: str  # "exact" | "ivf-flat" | "ivf-sq8" | "ivf-pq" | "ivf-fastscan"
    nlist: int
    nprobe: int
    candidates: int
    trained_for: int = 0  # gallery size the IVF lists were trained on (for the retrain decision)
    dim: int = 0  # the vectors' dimension (0: not recorded, in indexes written before it was)
    pq_bytes: int = 0  # ivf-pq, ivf-fastscan: code bytes an image
    tombstones: int = 0  # entries of removed images still in the lists (kinds not in REMOVES_IN_PLACE)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "candidates": self.candidates,
            "trained_for": self.trained_for,
            "dim": self.dim,
            "pq_bytes": self.pq_bytes,
            "tombstones": self.tombstones,
        }

    @classmethod
    def from_dict(cls, meta: dict | None) -> ResolvedAnn:
        meta = meta or {}
        return cls(
            str(meta.get("kind", "exact")),
            int(meta.get("nlist", 0)),
            int(meta.get("nprobe", 0)),
            int(meta.get("candidates", 4)),
            int(meta.get("trained_for", 0)),
            int(meta.get("dim", 0)),
            int(meta.get("pq_bytes", 0)),
            int(meta.get("tombstones", 0)),
        )


class VectorLookup(Protocol):
    kind: str

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k best rows for one query vector, best first."""
        ...


class ExactLookup:
    """Today's search: one matrix-vector product over every searchable vector, then top k."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cosines = self.vectors @ query
        rows = top_k(cosines, k)
        return rows, cosines[rows]


def _faiss():
    import faiss  # loaded on first use: importing the search package must stay cheap

    return faiss


def _mapped_file(vectors: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset of row 0) when `vectors` is a whole C-ordered .npy file mapped by `np.load(mmap_mode=...)`."""
    if (
        isinstance(vectors, np.memmap)
        and isinstance(vectors.base, mmap.mmap)  # a slice's base is its parent array: its offset would be wrong
        and vectors.flags.c_contiguous
        and vectors.filename
    ):
        return str(vectors.filename), int(vectors.offset)
    return None


def iter_rows(vectors: np.ndarray, chunk: int = 100_000) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block of up to `chunk` rows) over `vectors`, in order.

    A memory-mapped file is read with plain reads, not through the mapping: pages read through a mapping count in
    the process's resident memory until the kernel needs them back, so one pass over a 10M-image gallery (5 GiB)
    would show as 5 GiB resident; read this way, they sit only in the page cache."""
    n = len(vectors)
    mapped = _mapped_file(vectors)
    if mapped is None:
        for start in range(0, n, chunk):
            yield start, np.ascontiguousarray(vectors[start : start + chunk], dtype=np.float32)
        return
    filename, offset = mapped
    dim = int(np.prod(vectors.shape[1:], dtype=np.int64))
    row_bytes = dim * vectors.dtype.itemsize
    with open(filename, "rb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            f.seek(offset + start * row_bytes)
            block = np.fromfile(f, dtype=vectors.dtype, count=m * dim).reshape((m, *vectors.shape[1:]))
            if len(block) != m:
                raise OSError(f"{filename}: short read at row {start}")
            yield start, np.ascontiguousarray(block, dtype=np.float32)


def sample_rows(vectors: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` distinct rows of `vectors` drawn at random (in row order), gathered in one pass of `iter_rows`."""
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size, replace=False))
    if _mapped_file(vectors) is None:
        return np.ascontiguousarray(vectors[rows], dtype=np.float32)
    out = np.empty((size, *vectors.shape[1:]), dtype=np.float32)
    for start, block in iter_rows(vectors):
        lo, hi = np.searchsorted(rows, [start, start + len(block)])
        out[lo:hi] = block[rows[lo:hi] - start]
    return out


def build_ivf(vectors: np.ndarray, ids: np.ndarray, ann: ResolvedAnn, seed: int = 0):
    """Train an IVF index (flat, 8-bit scalar-quantized, or product-quantized with 8-bit or fast-scan 4-bit codes;
    inner product) on `vectors` and add them as `ids`.

    Memory is the codes plus a training sample (`TRAIN_POINTS_PER_LIST` per list, fewer when that would take more
    than `TRAIN_SAMPLE_BYTES`) and one block of vectors: a memory-mapped `vectors` is never read whole."""
    faiss = _faiss()
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    if ann.kind == "ivf-flat":
        index = faiss.IndexIVFFlat(quantizer, dim, ann.nlist, faiss.METRIC_INNER_PRODUCT)
    elif ann.kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, ann.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    elif ann.kind in PQ_KINDS:  # 8-bit codes, or two 4-bit fast-scan codes a byte
        per_byte = PQ_KINDS[ann.kind]
        m = per_byte * (ann.pq_bytes or pq_code_bytes(dim, per_byte))
        kind = faiss.IndexIVFPQ if per_byte == 1 else faiss.IndexIVFPQFastScan
        index = kind(quantizer, dim, ann.nlist, m, 8 // per_byte, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = seed
    else:
        raise ValueError(f"not an IVF kind: {ann.kind!r}")
    index.cp.seed = seed
    per_list = max(MIN_TRAIN_POINTS_PER_LIST, min(TRAIN_POINTS_PER_LIST, TRAIN_SAMPLE_BYTES // (4 * dim * ann.nlist)))
    points = max(ann.nlist * per_list, PQ_TRAIN_POINTS if ann.kind in PQ_KINDS else 0)
    train = sample_rows(vectors, min(len(vectors), points), seed)
    index.train(train)
    del train
    add_ivf(index, vectors, ids)
    return index


def add_ivf(index, vectors: np.ndarray, ids: np.ndarray, chunk: int = 100_000) -> None:
    ids = np.asarray(ids, dtype=np.int64)
    for start, block in iter_rows(vectors, chunk):
        index.add_with_ids(block, np.ascontiguousarray(ids[start : start + len(block)]))


def remove_ivf(index, ids: np.ndarray) -> int:
    if len(ids) == 0:
        return 0
    faiss = _faiss()
    return int(index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))


def refill_ivf(index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Empty the lists of `index` and add `vectors` as `ids`, keeping its training (coarse centroids, codebooks)."""
    index.reset()
    add_ivf(index, vectors, ids)


def write_ivf(index, path: Path) -> None:
    _faiss().write_index(index, str(path))


def read_ivf(path: Path):
    return _faiss().read_index(str(path))


class RowReader:
    """Rows of a gallery's vectors by row number. A memory-mapped file is read row by row with `pread`, not
    through the mapping: this kernel maps a whole large page-cache folio on a fault (measured: 40 scattered rows
    of a 51 MB file made 20 MB resident, with or without MADV_RANDOM), so re-scoring through the mapping made a
    10M gallery's 4.8 GiB file resident within the first queries."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors
        mapped = _mapped_file(vectors)
        self._fd: int | None = None
        if mapped is not None:
            filename, self._offset = mapped
            self._fd = os.open(filename, os.O_RDONLY)  # the file this array maps, even if the folder is swapped
            weakref.finalize(self, os.close, self._fd)
            self._shape = vectors.shape[1:]
            self._row_bytes = int(np.prod(self._shape, dtype=np.int64)) * vectors.dtype.itemsize

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self._fd is None:
            return np.asarray(self.vectors[rows], dtype=np.float32)
        out = np.empty((len(rows), *self._shape), dtype=self.vectors.dtype)
        for i, row in enumerate(rows.tolist()):
            data = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
            if len(data) != self._row_bytes:
                raise OSError(f"short read of gallery row {row}")
            out[i] = np.frombuffer(data, dtype=self.vectors.dtype).reshape(self._shape)
        return out.astype(np.float32, copy=False)


class IvfLookup:
    """faiss IVF probe for candidates, then exact re-scoring of the candidates that are still searchable."""

    def __init__(self, index, vectors: np.ndarray, ids: np.ndarray, ann: ResolvedAnn):
        self.index, self.vectors, self.ids, self.ann = index, vectors, np.asarray(ids, dtype=np.int64), ann
        self.kind = ann.kind
        self.read_rows = RowReader(vectors)
        if len(self.ids) > 1 and not bool(np.all(self.ids[1:] > self.ids[:-1])):
            raise ValueError("gallery ids must be strictly increasing (ids are never reused)")

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        want = min(len(self.ids), max(k * self.ann.candidates, k))
        if want <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        params = faiss.SearchParametersIVF(nprobe=self.ann.nprobe)
        _, found = self.index.search(np.ascontiguousarray(query[None, :], dtype=np.float32), want, params=params)
        rows = self.rows_of(found[0])  # ascending, so reads from the stored vectors go forward
        exact = np.asarray(self.read_rows(rows) @ query, dtype=np.float32)
        best = top_k(exact, k)
        return rows[best], exact[best]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Gallery rows of the ids that the gallery holds; any other id (removed, hidden, or -1) is dropped."""
        ids = ids[ids >= 0]
        rows = np.searchsorted(self.ids, ids)
        rows = np.minimum(rows, len(self.ids) - 1)
        return np.unique(rows[self.ids[rows] == ids])


def lookup_for(vectors: np.ndarray, ids: np.ndarray | None, ann: ResolvedAnn, ivf) -> VectorLookup:
    """The lookup a gallery's vectors are searched with: IVF when the index holds one for these vectors."""
    if ann.kind == "exact" or ivf is None or ids is None or len(ids) != len(vectors):
        return ExactLookup(vectors)
    return IvfLookup(ivf, vectors, ids, ann)
