"""Scoring a table of (image, query_text) pairs in batches; a bad row gets a reason instead of a score.

Which image files a pairs file may name: a relative path is read relative to the CSV's folder, an absolute
one as it is, and either must resolve (symbolic links followed) inside the allowed base folder, by default
the CSV's own folder (`base_dir`). So a pairs file cannot make the scorer read `../../../../etc/passwd` or a
link that leads out of the folder. Images open through `tasks.images.open_image` (pixel bound, header first).
"""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tasks.search.searcher import PairScore, Searcher, is_blank

REQUIRED = ("image", "query_text")
ADDED = ("score", "refused", "notice", "reason")


class PairsFileError(ValueError):
    """A pairs file that cannot be read as a table at all; the message is one line naming the file."""


@dataclass(frozen=True)
class ScoredTable:
    rows: int
    refused: int
    bad: int = 0  # rows with no score because the row itself is bad (see `reasons`)
    reasons: dict[str, int] = field(default_factory=dict)  # reason kind -> rows

    @property
    def scored(self) -> int:
        return self.rows - self.refused - self.bad


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    """(physical line, byte) of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                start = max(err.start, 0)
                return line + chunk[:start].count(b"\n"), chunk[start] if start < len(chunk) else 0
            line += chunk.count(b"\n")
    return line, 0


def read_pairs(source: Path) -> Iterator[tuple[int, list[str]]]:
    """(physical line, fields) of the header, then of every non-blank record; PairsFileError on a file that is
    no table of pairs (not UTF-8, empty, badly quoted, missing columns, rows longer or shorter than the header)."""
    from tasks.ingest.tables import _csv_problem

    source = Path(source)
    try:
        handle = open(source, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in finally
    except OSError as err:
        raise PairsFileError(f"{source}: cannot open: {err.strerror or err}") from None
    try:
        reader = csv.reader(handle, strict=True)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise PairsFileError(f"{source}: {_csv_problem(err, start, reader.line_num)}") from None
            except UnicodeDecodeError:
                line, byte = _first_bad_utf8(source)
                raise PairsFileError(
                    f"{source}: not valid UTF-8: byte 0x{byte:02x} at line {line} (save the file as UTF-8)"
                ) from None
            if not any(f.strip() for f in fields):
                continue
            if header is None:
                header = fields
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise PairsFileError(f"{source}: missing column(s) {missing}; found {header}")
                yield start, header
                continue
            if len(fields) != len(header):
                raise PairsFileError(
                    f"{source}: line {start}: {len(fields)} field(s) where the header has {len(header)}; "
                    "quote fields that contain commas"
                )
            yield start, fields
        if header is None:
            raise PairsFileError(f"{source}: file is empty; expected a header line with the columns image,query_text")
    finally:
        handle.close()


def image_problem(raw: str, csv_dir: Path, base: Path) -> tuple[Path | None, str]:
    """The image file a row names, or None and why it cannot be scored (the header is read, nothing decoded)."""
    path, problem = _allowed_path(raw.strip(), csv_dir, base)
    if path is None:
        return None, problem
    problem = _file_problem(path)
    return (None, problem) if problem else (path, "")


def _allowed_path(raw: str, csv_dir: Path, base: Path) -> tuple[Path | None, str]:
    """The resolved path (symbolic links followed) if it lies inside `base`."""
    if not raw:
        return None, "empty image path"
    if "\x00" in raw:
        return None, "image path contains a NUL character"
    path = Path(raw) if Path(raw).is_absolute() else csv_dir / raw
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        return None, f"image path cannot be resolved: {err}"
    if not resolved.is_relative_to(base):
        return None, f"image path outside the allowed folder {base} (see --base-dir)"
    return resolved, ""


def _file_problem(path: Path) -> str:
    """Why an image file cannot be scored, or "" (its header is read within the pixel bound, nothing decoded)."""
    from PIL import UnidentifiedImageError

    from tasks.images import ImageTooLargeError, open_image

    try:
        if not path.is_file():
            return "image path is not a file" if path.exists() else "image file not found"
        if path.stat().st_size == 0:
            return "image file is empty (0 bytes)"
        with open_image(path):
            pass  # the header is read and the pixel bound checked; decoding waits for the encoder
    except ImageTooLargeError as err:
        return f"image too large: {err}"
    except UnidentifiedImageError:
        return "not an image file (cannot identify its format)"
    except OSError as err:
        return f"image file cannot be read: {err.strerror or err}"
    return ""


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _score_rows(searcher: Searcher, texts: list[str], paths: list[Path]) -> list[PairScore | str]:
    """Scores of valid rows; when an image fails to decode only its own rows get the error as their reason."""
    try:
        return list(searcher.score_pairs(texts, paths))
    except (OSError, ValueError, RuntimeError) as err:
        if len(set(paths)) == 1:
            return [f"image cannot be decoded: {str(err).splitlines()[0][:300]}"] * len(texts)
    out: list[PairScore | str] = [""] * len(texts)
    for path in dict.fromkeys(paths):
        rows = [k for k, p in enumerate(paths) if p == path]
        for k, result in zip(rows, _score_rows(searcher, [texts[k] for k in rows], [path] * len(rows)), strict=True):
            out[k] = result
    return out


def score_table(
    searcher: Searcher, source: Path, out: Path, batch_size: int = 5000, base_dir: Path | None = None
) -> ScoredTable:
    """Stream a CSV with `image` (a path) and `query_text` columns into `out`, adding score, refused, notice and
    reason. Batches keep memory flat, so a million rows fit. A row with an empty text or an image that is
    missing, empty, unreadable, over the pixel bound, undecodable or outside `base_dir` gets no score and a
    reason; the table goes on. The output appears atomically when every row is written."""
    from tasks.workspace import atomic_path

    source = Path(source)
    csv_dir = source.resolve().parent
    base = Path(base_dir).resolve() if base_dir is not None else csv_dir
    for _ in read_pairs(source):  # the whole file parses before any model work or output
        pass
    rows = refused = bad = 0
    reasons: Counter[str] = Counter()
    with atomic_path(Path(out)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        batch: list[list[str]] = []

        def flush() -> None:
            nonlocal rows, refused, bad
            at_image, at_text = header.index("image"), header.index("query_text")
            checked: dict[str, tuple[Path | None, str]] = {}
            results: list[PairScore | str] = []
            valid: list[int] = []
            for k, fields in enumerate(batch):
                if fields[at_image] not in checked:
                    checked[fields[at_image]] = image_problem(fields[at_image], csv_dir, base)
                path, problem = checked[fields[at_image]]
                if is_blank(fields[at_text]):
                    problem = "empty query_text"
                results.append(problem)
                if not problem:
                    valid.append(k)
            if valid:
                scored = _score_rows(
                    searcher,
                    [batch[k][at_text] for k in valid],
                    [checked[batch[k][at_image]][0] for k in valid],  # type: ignore[misc]
                )
                for k, result in zip(valid, scored, strict=True):
                    results[k] = result
            for fields, result in zip(batch, results, strict=True):
                if isinstance(result, str):
                    writer.writerow([*fields, "", False, "", result])
                    bad += 1
                    reasons[_reason_kind(result)] += 1
                else:
                    score = "" if result.score is None else repr(result.score)
                    writer.writerow([*fields, score, result.refused, result.notice or "", ""])
                    refused += int(result.refused)
            rows += len(batch)
            batch.clear()

        records = read_pairs(source)
        header = next(records)[1]
        writer.writerow([*header, *ADDED])
        for _, fields in records:
            batch.append(fields)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    return ScoredTable(rows, refused, bad, dict(reasons))
