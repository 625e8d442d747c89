"""Readers for the five input tables: bytes on disk to typed DataFrames, with errors that name the file.

Each frame keeps a `line` column (the physical, 1-based line on which the row starts in its file, as an
editor shows it) so that a failed contract can point at the offending rows. Readers never modify the files
they read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
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

# Longest caption accepted, in characters (checked by the table contracts). Flickr8k captions are under 300;
# the bound keeps a runaway field (a pasted document, a lost quote) away from spaCy (limit 1,000,000) and the
# encoders, which would otherwise fail far from the cause.
MAX_TEXT_CHARS = 1000

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


def _csv_problem(err: csv.Error, start: int, end: int) -> str:
    """csv's terse errors as one line that names the physical line where the bad record starts."""
    message = str(err)
    if "unexpected end of data" in message:
        return (
            f"line {start}: a quoted field opened on this line is never closed (the file ends inside it at line "
            f"{end}); close the quote or double the quote characters inside the field"
        )
    if "expected after" in message:
        return f"line {end}: text after a closing quote ({message}); quote the whole field and double inner quotes"
    if "field larger than field limit" in message:
        return (
            f"line {start}: a field of more than {csv.field_size_limit():,} characters (a caption may have at most "
            f"{MAX_TEXT_CHARS:,}; a quote that is never closed also makes one)"
        )
    return f"line {start}: cannot parse: {message}"


def _records(path: Path, text: str, sep: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first physical line, last physical line, fields) of every non-blank record.

    Line numbers are physical: blank lines count, and a quoted field that spans lines moves the next
    record's number on by the lines it took, so a reported line is the line an editor shows.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=csv.QUOTE_MINIMAL, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise TableReadError(path, _csv_problem(err, start, reader.line_num)) from None
        if any(field.strip() for field in fields):
            yield start, reader.line_num, fields


def _fit_fields(path: Path, fields: list[str], width: int, start: int, end: int, sep_name: str) -> list[str]:
    """Pad a short record (the contracts then report its empty values); refuse a long one, naming its line."""
    if len(fields) > width:
        if any(field.strip() for field in fields[width:]):
            spans = f" (a quoted field runs from line {start} to line {end})" if end > start else ""
            raise TableReadError(
                path, f"line {start}: expected {width} {sep_name}-separated fields, found {len(fields)}{spans}"
            )
        return fields[:width]  # trailing empty fields (a separator at the end of the line) carry nothing
    return fields + [""] * (width - len(fields))


Records = Iterator[tuple[int, int, list[str]]]


def _rows_with_header(fmt: TableFormat, path: Path, records: Records, sep_hint: str) -> tuple[list[int], list[list]]:
    first = next(records, None)
    if first is None:
        raise TableReadError(path, "file has no header")
    header_line, _, names = first
    header = [name.strip() for name in names]
    skip = 1 if fmt.leading_index and header and header[0] == "" else 0  # test_queries.csv's unnamed index
    header = header[skip:]
    missing = [c for c in fmt.columns if c not in header]
    if missing:
        raise TableReadError(path, f"missing column(s) {missing}; found {header}{sep_hint}")
    repeated = sorted({c for c in fmt.columns if header.count(c) > 1})
    if repeated:
        raise TableReadError(path, f"line {header_line}: column(s) {repeated} appear more than once in the header")
    positions = [header.index(c) for c in fmt.columns]
    lines, rows = [], []
    for start, end, fields in records:
        fitted = _fit_fields(path, fields[skip:], len(header), start, end, fmt.sep_name)
        lines.append(start)
        rows.append([fitted[i] for i in positions])
    return lines, rows


def _rows_without_header(fmt: TableFormat, path: Path, records: Records, sep_hint: str) -> tuple[list[int], list[list]]:
    lines: list[int] = []
    rows: list[list] = []
    for start, end, fields in records:
        if not rows:
            # The first row decides the layout: a wrong count there usually means a wrong separator.
            found = len(fields)
            while found > len(fmt.columns) and not fields[found - 1].strip():
                found -= 1  # trailing separators carry nothing
            if found != len(fmt.columns):
                raise TableReadError(
                    path,
                    f"expected {len(fmt.columns)} {fmt.sep_name}-separated columns {list(fmt.columns)}, "
                    f"found {found} on line {start}{sep_hint}",
                )
        lines.append(start)
        rows.append(_fit_fields(path, fields, len(fmt.columns), start, end, fmt.sep_name))
    return lines, rows


def read_table(fmt: TableFormat, path: Path) -> pd.DataFrame:
    """Parse one table; string columns stay strings, rating columns become numbers (NaN when not a number).

    The `line` column is the physical line (1-based) on which each row starts.
    """
    path = Path(path)
    if not path.is_file():
        raise TableReadError(path, f"missing file (the {fmt.name} table, {fmt.filename})")
    text = _decode(path, path.read_bytes())
    if not text.strip():
        raise TableReadError(path, "file is empty")
    first_line = next(line for line in text.splitlines() if line.strip())
    hint = _guess_separator(first_line, fmt.sep)
    sep_hint = (
        f" (the file looks {hint}-separated; expected {fmt.sep_name})"
        if hint and first_line.count(fmt.sep) == 0
        else ""
    )
    read_rows = _rows_with_header if fmt.has_header else _rows_without_header
    lines, rows = read_rows(fmt, path, _records(path, text, fmt.sep), sep_hint)
    if not rows:
        raise TableReadError(path, "file has no data rows")

    frame = pd.DataFrame(rows, columns=list(fmt.columns), dtype=object)
    frame.insert(0, "line", lines)
    for column in fmt.columns:
        frame[column] = frame[column].astype(str).str.strip()
    for column in fmt.numeric:
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce").astype(float)
    return frame


def caption_image(query_id: pd.Series) -> pd.Series:
    """`<image>#<n>` names the image the caption was written for."""
    return query_id.str.rsplit("#", n=1).str[0]
