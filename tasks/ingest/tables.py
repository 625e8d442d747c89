"""Readers for the five input tables: bytes on disk to typed DataFrames, with errors that name the file.

Each frame keeps a `line` column (the 1-based line of the row in its file) so that a failed
contract can point at the offending rows. Readers never modify the files they read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class TableReadError(ValueError):
    """A table that cannot be parsed at all: missing, empty, not UTF-8, wrong separator, missing columns."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class TableFormat:
    """How one of the five tables is laid out on disk."""

    name: str
    filename: str
    sep: str
    columns: tuple[str, ...]
    has_header: bool
    numeric: tuple[str, ...] = ()
    leading_index: bool = False  # test_queries.csv starts with an unnamed index column

    @property
    def sep_name(self) -> str:
        return {"\t": "tab", ",": "comma", "|": "pipe"}[self.sep]


TRAIN = TableFormat("train", "train_dataset.csv", ",", ("image", "query_id", "query_text"), True)


def _ratings_table(name: str, filename: str, ratings: tuple[str, ...]) -> TableFormat:
    """The rating tables: tab-separated, no header, the pair then its numeric ratings."""
    return TableFormat(name, filename, "\t", ("image", "query_id", *ratings), False, numeric=ratings)


CROWD = _ratings_table("crowd", "CrowdAnnotations.tsv", ("share_yes", "count_yes", "count_no"))
EXPERT = _ratings_table("expert", "ExpertAnnotations.tsv", ("expert_1", "expert_2", "expert_3"))
QUERIES = TableFormat("queries", "test_queries.csv", "|", ("query_id", "query_text", "image"), True, leading_index=True)
TEST_IMAGES = TableFormat("test_images", "test_images.csv", ",", ("image",), True)

TABLE_FORMATS: dict[str, TableFormat] = {t.name: t for t in (TRAIN, CROWD, EXPERT, QUERIES, TEST_IMAGES)}
TRAIN_IMAGE_DIR = "train_images"
TEST_IMAGE_DIR = "test_images"
# Images are JPEG files: the image contracts accept these extensions and search indexes only these.
JPEG_EXTENSIONS = ("jpg", "jpeg", "JPG", "JPEG")


def is_jpeg_name(name: str) -> bool:
    return "." in name and name.rsplit(".", 1)[1] in JPEG_EXTENSIONS


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise TableReadError(
            path, f"not valid UTF-8: byte 0x{raw[err.start]:02x} at line {line} (save the file as UTF-8)"
        ) from None


def _guess_separator(first_line: str, expected: str) -> str | None:
    counts = {sep: first_line.count(sep) for sep in ("\t", ",", "|", ";") if sep != expected}
    best = max(counts, key=lambda sep: counts[sep])
    return {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon"}[best] if counts[best] else None


def read_table(fmt: TableFormat, path: Path) -> pd.DataFrame:
    """Parse one table; string columns stay strings, rating columns become numbers (NaN when not a number)."""
    path = Path(path)
    if not path.is_file():
        raise TableReadError(path, f"missing file (the {fmt.name} table, {fmt.filename})")
    text = _decode(path, path.read_bytes())
    if not text.strip():
        raise TableReadError(path, "file is empty")
    first_line = text.splitlines()[0]
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=fmt.sep,
            header=0 if fmt.has_header else None,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
            skip_blank_lines=True,
            engine="python" if fmt.sep == "|" else "c",
        )
    except pd.errors.ParserError as err:
        raise TableReadError(path, f"cannot parse as {fmt.sep_name}-separated: {err}") from None
    except pd.errors.EmptyDataError:
        raise TableReadError(path, "file is empty") from None

    hint = _guess_separator(first_line, fmt.sep)
    sep_hint = (
        f" (the file looks {hint}-separated; expected {fmt.sep_name})"
        if hint and first_line.count(fmt.sep) == 0
        else ""
    )
    if fmt.has_header:
        if fmt.leading_index and len(frame.columns) and str(frame.columns[0]).startswith("Unnamed"):
            frame = frame.drop(columns=frame.columns[0])
        missing = [c for c in fmt.columns if c not in frame.columns]
        if missing:
            raise TableReadError(
                path, f"missing column(s) {missing}; found {[str(c) for c in frame.columns]}{sep_hint}"
            )
        frame = frame[list(fmt.columns)]
        first_data_line = 2
    else:
        if frame.shape[1] != len(fmt.columns):
            raise TableReadError(
                path,
                f"expected {len(fmt.columns)} {fmt.sep_name}-separated columns {list(fmt.columns)}, "
                f"found {frame.shape[1]}{sep_hint}",
            )
        frame.columns = list(fmt.columns)
        first_data_line = 1
    if frame.empty:
        raise TableReadError(path, "file has no data rows")

    frame = frame.reset_index(drop=True)
    frame.insert(0, "line", range(first_data_line, first_data_line + len(frame)))
    for column in fmt.columns:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str).str.strip()
    for column in fmt.numeric:
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce").astype(float)
    return frame


def caption_image(query_id: pd.Series) -> pd.Series:
    """`<image>#<n>` names the image the caption was written for."""
    return query_id.str.rsplit("#", n=1).str[0]
