"""Image names of a large gallery in one Arrow string array instead of a list of Python strings.

A Python `str` of a 21-character name costs about 70 bytes plus 8 for the list slot; 10M names are about 0.8 GiB
(measured: 86 MiB per million in a list). As one Arrow array they cost the characters plus a 4-byte offset each
(about 0.25 GiB for 10M), and reading `images.parquet` builds no Python object per name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
import pyarrow as pa

_BATCH = 65_536  # names turned into Python strings at a time when iterating


class ImageNames(Sequence[str]):
    """A read-only sequence of image names, row-aligned with the gallery's vectors; compares equal to a list."""

    __slots__ = ("_array",)

    def __init__(self, names: Iterable[str] | pa.Array | pa.ChunkedArray):
        if isinstance(names, ImageNames):
            array = names._array
        elif isinstance(names, pa.ChunkedArray):
            array = names.combine_chunks() if names.num_chunks != 1 else names.chunk(0)
        elif isinstance(names, pa.Array):
            array = names
        else:
            array = pa.array(list(names), type=pa.string())
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            raise TypeError(f"image names must be strings, not {array.type}")
        if array.null_count:
            raise ValueError("an image name is missing")
        self._array: pa.Array = array

    @property
    def arrow(self) -> pa.Array:
        return self._array

    def __len__(self) -> int:
        return len(self._array)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return list(self._array[i].to_pylist())
        n = len(self._array)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("image row out of range")
        return str(self._array[i].as_py())

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self._array), _BATCH):
            yield from self._array.slice(start, _BATCH).to_pylist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ImageNames):
            return bool(self._array.equals(other._array)) or list(self) == list(other)
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequence semantics, like list

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3])
        return f"ImageNames([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def take(self, rows: np.ndarray) -> ImageNames:
        """The names at `rows`, in that order."""
        return ImageNames(self._array.take(pa.array(np.asarray(rows, dtype=np.int64))))

    def extend(self, more: Sequence[str]) -> ImageNames:
        """These names, then `more` (a new sequence; this one is unchanged)."""
        tail = as_names(more).arrow
        if not len(tail):
            return self
        if tail.type != self._array.type:
            tail = tail.cast(self._array.type)
        return ImageNames(pa.concat_arrays([self._array, tail]))


def as_names(names: Sequence[str]) -> ImageNames:
    return names if isinstance(names, ImageNames) else ImageNames(names)


def names_array(names: Sequence[str]) -> pa.Array:
    """Arrow array of `names` for writing (no copy when they already are one)."""
    return as_names(names).arrow


class NameRows:
    """Row of each name in an image-name sequence, for `name in rows` and `rows.get(name)`.

    A dict of 10M names costs about 1 GiB; this keeps a sorted array of the names' hashes and the rows they
    belong to (16 bytes a name) and checks the name itself on a hit, so a hash collision never answers for
    another image."""

    __slots__ = ("_names", "_hashes", "_rows")

    def __init__(self, names: Sequence[str]):
        self._names = names
        hashes = np.fromiter((hash(name) for name in names), dtype=np.int64, count=len(names))
        self._rows = np.argsort(hashes, kind="stable")
        self._hashes = hashes[self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, name: str) -> int | None:
        h = hash(name)
        lo = int(np.searchsorted(self._hashes, h, side="left"))
        while lo < len(self._hashes) and self._hashes[lo] == h:
            row = int(self._rows[lo])
            if self._names[row] == name:
                return row
            lo += 1
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None
