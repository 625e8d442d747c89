"""Content-addressed embedding cache (Parquet, one folder per encoder id) and the embedding calls built on it.

A vector is stored under the sha256 of the text or of the image file's bytes, so a rerun embeds only
texts and files that are new or changed, whatever they are called. Each write adds a new Parquet part
atomically (parts have unique names, so parallel shards never collide); many small parts are merged into
parts of at most `PART_BYTES`. Opening a cache reads the keys of every part; a part's vectors are read only when
one of its keys is asked for. Each part carries a sha256 of its keys and vectors in its metadata, checked
whenever its vectors are read: a part that cannot be read, fails that checksum or any other check is reported,
moved to the quarantine and its vectors are recomputed on the next call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.embed.encoders.base import IMAGE_BATCH_SIZE, ImageEncoder, TextEncoder
from tasks.embed.encoders.batching import encode_image_files, encode_texts
from tasks.progress import ProgressLog, run_logger
from tasks.workspace import Workspace, atomic_path, file_sha256, text_sha256

log = logging.getLogger(__name__)

PART_GLOB = "part-*.parquet"
META_ENCODER = b"imgsearch.encoder_id"
# sha256 of the part's content (see `content_digest`): a flipped bit anywhere in the keys or the vectors
# changes it, where Parquet alone would decode the flipped float as a valid vector.
META_SHA256 = b"imgsearch.content_sha256"
# Small parts are merged when a cache folder holds more than this many of them: keeps cold reads fast.
MAX_PARTS = 16
# Misses are embedded and written in chunks of this many, so an interrupted cold run keeps its progress.
WRITE_CHUNK = 1024
# Compaction merges parts up to this size (and leaves larger ones): a lookup reads only the parts that hold its
# keys, so parts stay small enough to read one for a single vector (64 MiB: 13,107 rows of 1280 floats).
PART_BYTES = 64 * 2**20
# Vectors of parts already read are kept for the next lookup up to about this much, least recently used first out:
# a gallery decided in chunks through one cache object holds a chunk's parts, not every part it has read.
KEEP_BYTES = 2**30
ROW_MASK = 0xFFFFFFFF  # where a key's vector is: part number << 32 | row in that part


@dataclass(frozen=True)
class Embeddings:
    """Vectors for named items (query ids, image names): row i of `matrix` belongs to `keys[i]`."""

    keys: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)
    encoder_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.keys):
            raise ValueError(f"matrix shape {self.matrix.shape} does not fit {len(self.keys)} keys")

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {key: row for row, key in enumerate(self.keys)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Rows for `keys`, in that order; a KeyError names the first unknown key."""
        rows = self._rows
        try:
            return self.matrix[[rows[k] for k in keys]]
        except KeyError as err:
            raise KeyError(f"no {self.encoder_id} embedding for {err.args[0]!r}") from None


@dataclass(frozen=True)
class CacheReport:
    """What one embedding call did: how many inputs, how many came from the cache, how long it took."""

    encoder_id: str
    requested: int
    unique: int
    hits: int
    misses: int
    corrupt_parts: int
    seconds: float

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class CorruptPartError(ValueError):
    """A cache part that cannot be trusted; the cache quarantines it and recomputes its vectors."""


def content_digest(keys: Sequence[str], matrix: np.ndarray) -> str:
    """sha256 over the shape, the keys and the vectors' little-endian float32 bytes."""
    digest = hashlib.sha256(f"{len(keys)}x{matrix.shape[1]}\n".encode())
    digest.update("\n".join(keys).encode())
    digest.update(b"\0")
    digest.update(np.ascontiguousarray(matrix, dtype="<f4").tobytes())
    return digest.hexdigest()


def _read_part(path: Path, encoder_id: str) -> tuple[list[str], np.ndarray, bool]:
    """Keys, vectors, and whether a checksum vouched for them (parts written before checksums have none)."""
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for truncated or garbled files
        raise CorruptPartError(f"unreadable: {type(err).__name__}: {err}") from err
    meta = table.schema.metadata or {}
    if meta.get(META_ENCODER, b"").decode() != encoder_id:
        raise CorruptPartError(f"written for encoder {meta.get(META_ENCODER, b'?').decode()!r}, not {encoder_id!r}")
    if table.schema.names != ["key", "vector"] or not pa.types.is_fixed_size_list(table.schema.field("vector").type):
        raise CorruptPartError(f"unexpected schema {table.schema}")
    dim = table.schema.field("vector").type.list_size
    vectors = table.column("vector").combine_chunks()
    if table.column("key").null_count or vectors.null_count:
        raise CorruptPartError("null keys or vectors")
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    if not np.isfinite(matrix).all():
        raise CorruptPartError("non-finite values")
    keys = table.column("key").to_pylist()
    expected = meta.get(META_SHA256)
    if expected is None:
        # Only a part whose metadata is exactly what the writer put there before checksums counts as old;
        # anything else (a flipped bit in the checksum's own key, say) is damage.
        if set(meta) != {META_ENCODER}:
            raise CorruptPartError(f"no checksum, and unexpected metadata keys {sorted(meta)}")
        return keys, matrix, False
    if content_digest(keys, matrix) != expected.decode(errors="replace"):
        raise CorruptPartError("checksum mismatch: its keys or vectors changed after it was written")
    return keys, matrix, True


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)  # ASCII byte -> its value as a lower-case hex digit (255: not one)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def key_digests(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 128-bit digest of each key as two uint64 halves: for a sha256 hex key (every key the cache writes), its
    32 bytes folded in two by XOR, decoded for all keys at once; for any other key, its blake2b. Two keys with one
    digest are told apart where it matters: `EmbeddingCache` checks the stored key of every row it finds."""
    n = len(keys)
    raw = np.zeros((0, 64), dtype=np.uint8)
    try:
        joined = "".join(keys).encode("ascii")
        if len(joined) == 64 * n and all(len(k) == 64 for k in keys):
            raw = np.frombuffer(joined, dtype=np.uint8).reshape(n, 64)
    except UnicodeEncodeError:
        pass
    if len(raw) == n and not (_HEX_VALUE[raw] == 255).any():
        nibbles = _HEX_VALUE[raw]
        octets = np.ascontiguousarray(nibbles[:, 0::2] << 4 | nibbles[:, 1::2])
    else:
        octets = np.frombuffer(b"".join(map(_key_bytes, keys)), dtype=np.uint8).reshape(n, 32)
    words = octets.view(">u8").astype(np.uint64)
    return words[:, 0] ^ words[:, 2], words[:, 1] ^ words[:, 3]


def _key_bytes(key: str) -> bytes:
    """32 bytes standing for a key: a lower-case hex key's own bytes, else its blake2b."""
    if len(key) == 64 and key.isascii() and not (_HEX_VALUE[np.frombuffer(key.encode(), np.uint8)] == 255).any():
        return bytes.fromhex(key)
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=32).digest()


class KeyRows:
    """Where each key's vector is (part number << 32 | row), for millions of keys in about 24 bytes a key: the
    keys' 128-bit digests (`key_digests`) sorted in arrays, plus a dict of the ones added since the arrays were
    last rebuilt (folded in once they are an eighth of them). A key added again points at its latest row.

    A dict of the key strings cost about 200 bytes a key: 1.8 GB for a ten-million-image gallery, per encoder
    (`python bench/embedding_cache.py --key-index 10000000`)."""

    def __init__(self) -> None:
        self._hi = np.zeros(0, dtype=np.uint64)
        self._lo = np.zeros(0, dtype=np.uint64)
        self._at = np.zeros(0, dtype=np.int64)
        self._staged: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # added, not yet in `_recent`
        self._recent: dict[int, int] = {}  # digest (hi << 64 | lo) -> where, newer than the arrays

    def add(self, keys: Sequence[str], where: np.ndarray) -> None:
        hi, lo = key_digests(keys)
        self._staged.append((hi, lo, np.asarray(where, dtype=np.int64)))

    def _settle(self) -> None:
        staged = sum(len(hi) for hi, _, _ in self._staged) + len(self._recent)
        if staged > max(2**16, len(self._at) // 8):
            self._fold()
        for hi, lo, at in self._staged:
            digests = (high << 64 | low for high, low in zip(hi.tolist(), lo.tolist(), strict=True))
            self._recent.update(zip(digests, at.tolist(), strict=True))
        self._staged = []

    def _fold(self) -> None:
        """Everything added into the sorted arrays; of equal digests the last added wins. One column at a time,
        each source released as it is copied. Nothing added since the last fold: nothing to sort again."""
        if not self._staged and not self._recent:
            return
        recent = list(self._recent)
        parts = [(self._hi, self._lo, self._at), *self._staged]
        if recent:
            parts.insert(
                1,
                (
                    np.array([d >> 64 for d in recent], dtype=np.uint64),
                    np.array([d & 0xFFFFFFFFFFFFFFFF for d in recent], dtype=np.uint64),
                    np.fromiter(self._recent.values(), dtype=np.int64, count=len(recent)),
                ),
            )
        del recent
        self._staged, self._recent = [], {}
        columns = [[part[i] for part in parts] for i in range(3)]
        del parts
        self._hi = self._lo = np.zeros(0, dtype=np.uint64)
        self._at = np.zeros(0, dtype=np.int64)
        hi = np.concatenate(columns[0])
        columns[0] = []
        order = np.argsort(hi, kind="stable")  # one 64-bit key: much faster than sorting on both halves
        hi = hi[order]
        lo = np.concatenate(columns[1])[order]
        columns[1] = []
        at = np.concatenate(columns[2])[order]
        del columns, order
        # Runs of equal first halves (a key added again; two keys only by chance) are ordered by the second half,
        # stably, so that equal digests sit together in the order they were added.
        tied = np.flatnonzero(hi[1:] == hi[:-1])
        if len(tied):
            rows = np.union1d(tied, tied + 1)
            by_digest = np.lexsort((lo[rows], hi[rows]))
            lo[rows], at[rows] = lo[rows][by_digest], at[rows][by_digest]
        last = np.ones(len(hi), dtype=bool)
        last[:-1] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        self._hi, self._lo, self._at = hi[last], lo[last], at[last]

    def find(self, keys: Sequence[str]) -> np.ndarray:
        """Where each key's vector is, -1 for a key never added (or one whose part was dropped)."""
        self._settle()
        hi, lo = key_digests(keys)
        out = np.full(len(keys), -1, dtype=np.int64)
        if len(self._hi):
            at = np.searchsorted(self._hi, hi)
            while True:  # equal first halves sit next to each other: a second pass is almost never needed
                live = at < len(self._hi)
                live[live] = self._hi[at[live]] == hi[live]
                live &= out < 0
                if not live.any():
                    break
                same = live.copy()
                same[live] = self._lo[at[live]] == lo[live]
                out[same] = self._at[at[same]]
                at = np.where(live & ~same, at + 1, len(self._hi))
        if self._recent:
            for i, (high, low) in enumerate(zip(hi.tolist(), lo.tolist(), strict=True)):
                where = self._recent.get(high << 64 | low)
                if where is not None:
                    out[i] = where
        return out

    def drop_parts(self, numbers: set[int]) -> None:
        """Forget every key whose vector is in one of these parts."""
        self._fold()
        keep = ~np.isin(self._at >> 32, np.fromiter(numbers, dtype=np.int64, count=len(numbers)))
        self._hi, self._lo, self._at = self._hi[keep], self._lo[keep], self._at[keep]

    def __len__(self) -> int:
        self._fold()
        return len(self._at)


class EmbeddingCache:
    """One encoder's cache folder: every part's keys are read on first use, a part's vectors only when one of its
    keys is asked for (then checked against the part's checksum and kept while this object lives).

    Holding every vector of a folder in memory cost the whole cache for any lookup: with a gallery of a million
    images, a 10,000-image update or one uploaded file scored by path read about 30 GB (Lite2's 1280 floats and the
    detector's 5 x 1280 an image). Now such a lookup costs the keys (`KeyRows`, 24 bytes each) and the few parts that
    hold the vectors asked for. Parts stay at most `PART_BYTES` each: compaction merges only small parts."""

    def __init__(self, directory: Path, encoder_id: str, quarantine: Path | None = None):
        self.directory = Path(directory)
        self.encoder_id = encoder_id
        self.quarantine = quarantine
        self.corrupt_parts = 0
        # key -> part number << 32 | row in that part; the part numbers index `_parts`
        self._rows: KeyRows | None = None
        self._dim: int | None = None
        self._parts: list[Path | None] = []  # parts this object indexed (None once gone): compaction deletes only these
        self._sizes: list[int] = []  # rows of each part
        self._unverified: set[int] = set()  # parts written before checksums
        # the keys and checked vectors of parts read, least recently used first (at most about KEEP_BYTES of them)
        self._vectors: OrderedDict[int, tuple[list[str], np.ndarray]] = OrderedDict()
        self._stale = False  # a part indexed here was gone when its vectors were wanted
        self.keep_bytes = KEEP_BYTES  # vectors of parts read that this object keeps (least recently used out)

    @classmethod
    def for_workspace(cls, workspace: Workspace, encoder_id: str) -> EmbeddingCache:
        return cls(
            workspace.embedding_cache_dir(encoder_id), encoder_id, workspace.embedding_quarantine_dir(encoder_id)
        )

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob(PART_GLOB))

    def _quarantine(self, path: Path, why: str) -> None:
        self.corrupt_parts += 1
        log.warning("embedding cache part %s is corrupt (%s); quarantined, its vectors will be recomputed", path, why)
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            if self.quarantine is not None:
                self.quarantine.mkdir(parents=True, exist_ok=True)
                path.replace(self.quarantine / f"{path.name}.{uuid.uuid4().hex[:6]}.corrupt")
            else:
                path.unlink(missing_ok=True)

    def _load(self) -> KeyRows:
        if self._rows is not None:
            return self._rows
        self._rows = KeyRows()
        for path in self.parts():
            try:
                keys, dim, verified = _read_part_keys(path, self.encoder_id)
                if self._dim is not None and dim != self._dim:
                    raise CorruptPartError(f"dimension {dim}, other parts have {self._dim}")
            except CorruptPartError as err:
                self._quarantine(path, str(err))
                continue
            self._dim = dim
            number = self._index(path, keys)
            if not verified:
                self._unverified.add(number)
        if self._unverified or len(self._small_parts()) > MAX_PARTS:
            # Parts from before checksums are trusted once and rewritten with one (new part first, then the old go).
            self.compact(rewrite_single=bool(self._unverified))
        return self._rows

    def _index(self, path: Path, keys: Sequence[str]) -> int:
        assert self._rows is not None
        number = len(self._parts)
        self._parts.append(path)
        self._sizes.append(len(keys))
        self._rows.add(keys, number << 32 | np.arange(len(keys), dtype=np.int64))
        return number

    def _forget(self, numbers: set[int]) -> None:
        """Drop parts from the index: their keys become misses (unless a later part holds them too)."""
        assert self._rows is not None
        for number in numbers:
            self._parts[number] = None
            self._vectors.pop(number, None)
            self._unverified.discard(number)
        self._rows.drop_parts(numbers)

    def _reset(self) -> None:
        """Forget everything read, so the next use reads the folder again."""
        self._rows, self._dim = None, None
        self._parts, self._sizes, self._unverified, self._vectors = [], [], set(), OrderedDict()

    def _part(self, number: int) -> tuple[list[str], np.ndarray] | None:
        """The part's keys and vectors, read and checked on first use; None when it is corrupt (then quarantined
        and forgotten) or gone (another process merged it: `missing` then reads the folder again)."""
        if number in self._vectors:
            self._vectors.move_to_end(number)
            return self._vectors[number]
        path = self._parts[number]
        if path is None:
            return None
        if not path.exists():
            self._forget({number})
            self._stale = True
            return None
        try:
            keys, matrix, _ = _read_part(path, self.encoder_id)
            if len(matrix) != self._sizes[number] or matrix.shape[1] != self._dim:
                raise CorruptPartError(f"{matrix.shape} vectors where its keys said {self._sizes[number]}")
        except CorruptPartError as err:
            self._quarantine(path, str(err))
            self._forget({number})
            return None
        self._keep(number, (keys, matrix))
        return keys, matrix

    def _keep(self, number: int, part: tuple[list[str], np.ndarray]) -> None:
        self._vectors[number] = part
        held = sum(matrix.nbytes for _, matrix in self._vectors.values())
        while held > self.keep_bytes and len(self._vectors) > 1:
            _, (_, dropped) = self._vectors.popitem(last=False)
            held -= dropped.nbytes

    def _small_parts(self) -> list[int]:
        limit = self._part_rows() // 2
        return [n for n, path in enumerate(self._parts) if path is not None and self._sizes[n] <= limit]

    def _part_rows(self) -> int:
        return max(WRITE_CHUNK, PART_BYTES // (4 * (self._dim or 1)))

    def __len__(self) -> int:
        return len(self._load())

    @property
    def dim(self) -> int | None:
        """Vector length of the cached vectors; None while the cache is empty."""
        self._load()
        return self._dim

    def missing(self, keys: Sequence[str]) -> list[str]:
        """Keys without a cached vector, each once, in first-seen order. The parts holding the others are read
        and checked now, so a corrupt one's keys are reported missing (and recomputed) rather than failing `get`."""
        wanted = list(dict.fromkeys(keys))
        for _ in range(3):  # a part merged away by another process meanwhile: read the folder again
            self._stale = False
            where = self._load().find(wanted)
            for number, at in _by_part(where):
                part = self._part(number)
                if part is None:  # corrupt (forgotten now) or gone
                    where[at] = -1
                    continue
                part_keys = part[0]
                for i, row in zip(at.tolist(), (where[at] & ROW_MASK).tolist(), strict=True):
                    if part_keys[row] != wanted[i]:  # another key with the same digest: not this one's vector
                        where[i] = -1
            if not self._stale:
                break
            self._reset()
        return [key for key, found in zip(wanted, (where >= 0).tolist(), strict=True) if not found]

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Rows for `keys` (a KeyError for one not cached: ask `missing` first)."""
        keys = list(keys)
        where = self._load().find(keys)
        if (where < 0).any():
            raise KeyError(f"{self.encoder_id}: {keys[int(np.argmax(where < 0))]!r} is not cached")
        out = np.empty((len(keys), self._dim or 0), dtype=np.float32)
        for number, at in _by_part(where):
            part = self._part(number)
            rows = where[at] & ROW_MASK
            if part is None or any(part[0][r] != keys[i] for i, r in zip(at.tolist(), rows.tolist(), strict=True)):
                raise KeyError(
                    f"{self.encoder_id}: the part holding {keys[int(at[0])]!r} is corrupt or gone, or holds another "
                    "key of the same digest; ask `missing` again"
                )
            out[at] = part[1][rows]
        return out

    def add(self, keys: Sequence[str], matrix: np.ndarray) -> Path | None:
        """Write the vectors as a new part (atomically) and make them visible to `get`."""
        self._load()
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if len(keys) != len(matrix):
            raise ValueError(f"{len(keys)} keys for {len(matrix)} vectors")
        if not len(keys):
            return None
        if self._dim is not None and matrix.shape[1] != self._dim:
            raise ValueError(f"{self.encoder_id}: vectors of dimension {matrix.shape[1]}, cache holds {self._dim}")
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            # A NaN stored once would be served forever; fail the run instead, naming the inputs.
            examples = [keys[i][:12] for i in np.flatnonzero(bad)[:3]]
            raise ValueError(
                f"{self.encoder_id} produced {int(bad.sum())} non-finite vector(s), e.g. for keys {examples}"
            )
        path = self._write(list(keys), matrix)
        self._dim = matrix.shape[1]
        self._keep(self._index(path, list(keys)), (list(keys), matrix))
        return path

    def _write(self, keys: list[str], matrix: np.ndarray) -> Path:
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel(), pa.float32()), matrix.shape[1])
        table = pa.table({"key": pa.array(keys, pa.string()), "vector": vectors})
        table = table.replace_schema_metadata(
            {META_ENCODER: self.encoder_id.encode(), META_SHA256: content_digest(keys, matrix).encode()}
        )
        # Time first so that parts sort in write order; the uuid keeps parallel writers apart.
        path = self.directory / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    def compact(self, rewrite_single: bool = False) -> Path | None:
        """Merge the small parts this cache has indexed (at most half of `PART_BYTES` each) into parts of up to
        `PART_BYTES`, and rewrite parts from before checksums (also alone when `rewrite_single`). Each new part
        lands before the old ones go, so a crash loses nothing; parts another process wrote meanwhile, and large
        parts, are left alone. Returns the last part written."""
        self._load()
        todo = sorted(set(self._small_parts()) | self._unverified)
        if len(todo) < (1 if rewrite_single or self._unverified else 2):
            return None
        last, group, size = None, list[int](), 0
        for number in todo + [-1]:
            if number >= 0 and (not group or size + self._sizes[number] <= self._part_rows()):
                group.append(number)
                size += self._sizes[number]
                continue
            written = self._merge(group)
            last = written or last
            group, size = ([number], self._sizes[number]) if number >= 0 else ([], 0)
        return last

    def _merge(self, group: list[int]) -> Path | None:
        """One part in place of the parts `group` (the keys whose latest vector they hold, once each)."""
        rows = self._load()
        parts = {n: self._part(n) for n in group}
        keys: list[str] = []
        blocks = []
        for number, part in parts.items():
            if part is None:
                continue
            part_keys, matrix = part
            latest = rows.find(part_keys) == (number << 32 | np.arange(len(part_keys), dtype=np.int64))
            keys += [k for k, is_latest in zip(part_keys, latest.tolist(), strict=True) if is_latest]
            blocks.append(matrix[latest])
        group = [n for n, part in parts.items() if part is not None]
        if not group:
            return None
        matrix = np.concatenate(blocks) if blocks else np.zeros((0, self._dim or 0), dtype=np.float32)
        path = self._write(keys, matrix) if keys else None
        old = [self._parts[n] for n in group]
        for number in group:  # every key pointing into the group moves to the new part
            self._parts[number] = None
            self._vectors.pop(number, None)
            self._unverified.discard(number)
        if path is not None:
            self._keep(self._index(path, keys), (keys, matrix))
        for part_path in old:
            if part_path is not None:
                part_path.unlink(missing_ok=True)
        return path


def _by_part(where: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(part number, positions in `where` of the keys found in it) for every part that `where` points into."""
    found = np.flatnonzero(where >= 0)
    numbers = where[found] >> 32
    order = np.argsort(numbers, kind="stable")
    found, numbers = found[order], numbers[order]
    if not len(numbers):
        return []
    starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
    ends = np.r_[starts[1:], len(numbers)]
    return [(int(numbers[a]), found[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _read_part_keys(path: Path, encoder_id: str) -> tuple[list[str], int, bool]:
    """A part's keys, its vectors' length, and whether it carries a checksum; reads the key column only (the
    checksum is checked when its vectors are read, `_read_part`)."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        meta = schema.metadata or {}
        if meta.get(META_ENCODER, b"").decode() != encoder_id:
            raise CorruptPartError(f"written for encoder {meta.get(META_ENCODER, b'?').decode()!r}, not {encoder_id!r}")
        if schema.names != ["key", "vector"] or not pa.types.is_fixed_size_list(schema.field("vector").type):
            raise CorruptPartError(f"unexpected schema {schema}")
        if META_SHA256 not in meta and set(meta) != {META_ENCODER}:
            raise CorruptPartError(f"no checksum, and unexpected metadata keys {sorted(meta)}")
        keys = parquet.read(columns=["key"]).column("key")
    except CorruptPartError:
        raise
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for truncated or garbled files
        raise CorruptPartError(f"unreadable: {type(err).__name__}: {err}") from err
    if keys.null_count:
        raise CorruptPartError("null keys")
    return keys.to_pylist(), int(schema.field("vector").type.list_size), META_SHA256 in meta


def hash_files(paths: Sequence[Path], workers: int = 4) -> list[str]:
    """sha256 of each file's bytes; threads overlap the reads (hashlib releases the GIL on large buffers)."""
    if len(paths) < 8:
        return [file_sha256(Path(p)) for p in paths]
    with ThreadPoolExecutor(workers, thread_name_prefix="hash") as pool:
        return list(pool.map(lambda p: file_sha256(Path(p)), paths))


def text_keys(texts: Sequence[str]) -> list[str]:
    return [text_sha256(t) for t in texts]


def cached_embed(
    keys: Sequence[str],
    cache: EmbeddingCache,
    compute: Callable[[list[int], ProgressLog], np.ndarray],
    chunk: int = WRITE_CHUNK,
    what: str = "embedding",
) -> tuple[np.ndarray, CacheReport]:
    """Rows for `keys` from the cache; `compute(positions, progress_log)` embeds the inputs at those positions
    for the misses, counting rows done in `progress_log` (a line per tenth of the misses, named `what`)."""
    started = time.perf_counter()
    before = cache.corrupt_parts
    missing = cache.missing(keys)
    first: dict[str, int] = {}
    for position, key in enumerate(keys):
        first.setdefault(key, position)
    positions = [first[k] for k in missing]
    progress_log = ProgressLog(f"{what} with {cache.encoder_id}", len(positions), run_logger(log))
    for start in range(0, len(positions), chunk):
        part = positions[start : start + chunk]
        cache.add([keys[p] for p in part], compute(part, progress_log))
    matrix = cache.get(keys) if len(keys) else np.zeros((0, cache.dim or 0), dtype=np.float32)
    report = CacheReport(
        encoder_id=cache.encoder_id,
        requested=len(keys),
        unique=len(first),
        hits=len(first) - len(missing),
        misses=len(missing),
        corrupt_parts=cache.corrupt_parts - before,
        seconds=round(time.perf_counter() - started, 3),
    )
    return matrix, report


class CachedVectors(NamedTuple):
    """Vectors aligned with the inputs, and what the cache did to get them."""

    matrix: np.ndarray
    report: CacheReport


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    workspace: Workspace,
    batch_size: int = 256,
    progress: bool | None = None,
) -> CachedVectors:
    """One row per text, aligned with the input; only texts the cache has not seen are embedded (a bar on a
    terminal unless `progress` is False, and a log line per tenth of a long job)."""
    texts = list(texts)
    cache = EmbeddingCache.for_workspace(workspace, encoder.encoder_id)
    return CachedVectors(
        *cached_embed(
            text_keys(texts),
            cache,
            lambda pos, lines: encode_texts(encoder, [texts[p] for p in pos], batch_size, progress, lines),
            what="embedding texts",
        )
    )


def embed_image_files(
    paths: Sequence[Path],
    encoder: ImageEncoder,
    workspace: Workspace,
    batch_size: int = IMAGE_BATCH_SIZE,
    num_workers: int = 2,
    progress: bool | None = None,
    cache: EmbeddingCache | None = None,
    digests: Sequence[str] | None = None,
) -> CachedVectors:
    """One row per image file, aligned with the input; only files whose bytes the cache has not seen are embedded.
    Progress as in `embed_texts`. `cache`: the encoder's cache object to use (one that has read the folder's keys
    already, for a caller that embeds in chunks). `digests`: the files' `hash_files`, when the caller has them (so
    a file embedded by two encoders is read for hashing once)."""
    paths = [Path(p) for p in paths]
    if cache is None:
        cache = EmbeddingCache.for_workspace(workspace, encoder.encoder_id)
    return CachedVectors(
        *cached_embed(
            hash_files(paths) if digests is None else list(digests),
            cache,
            lambda pos, lines: encode_image_files(
                encoder, [paths[p] for p in pos], batch_size, num_workers, progress, lines
            ),
            what="embedding images",
        )
    )
