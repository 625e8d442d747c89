"""New ratings arriving as files: validate each batch, merge good ones into an append-only store.

A file dropped into the workspace's `inbox/` is one batch. Its id is the hash of its content with line
endings, a UTF-8 BOM, trailing whitespace and blank lines normalised away, so a re-delivered file is
recognised and not counted twice even after an editor or a Windows copy rewrote its line ends. A good
batch becomes one Parquet file in `ratings/batches/` and the source moves to `inbox/archive/`; a bad
batch moves to `quarantine/` with a `.reason.txt` beside it and nothing is merged. So does anything else
dropped into the inbox (a `ratings.csv`, a folder): nothing stays there unreported. Hidden files (a name
starting with '.') are copies in progress and are left alone. One bad file never blocks the good ones.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tasks.ingest.tables import CROWD, EXPERT, TableFormat, read_table
from tasks.workspace import Workspace, write_parquet_atomic, write_text_atomic

RATINGS_SUFFIXES = {".tsv", ".txt"}
STORE_LOCK = "ratings-store"  # only one inbox run merges at a time, so two runs cannot both merge a new file


@dataclass(frozen=True)
class BatchOutcome:
    file: str
    status: str  # "merged" | "duplicate" | "quarantined"
    kind: str  # "crowd" | "expert" | "unknown"
    batch_id: str
    rows: int = 0
    dropped_unknown_text: int = 0
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def normalized_content(raw: bytes) -> bytes:
    """The bytes that matter to the reader: no BOM, '\n' line ends, no trailing whitespace, no blank lines.

    A plain LF file that ends in a newline, without trailing spaces or blank lines, is its own normal form,
    so its id is the one it had before ids were normalised."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    lines = [line.rstrip() for line in raw.splitlines()]
    return b"".join(line + b"\n" for line in lines if line)


def batch_id(path: Path) -> str:
    return hashlib.sha256(normalized_content(Path(path).read_bytes())).hexdigest()[:20]


def inbox_entries(workspace: Workspace) -> list[Path]:
    """Everything in the inbox a run must account for: every entry but the archive and hidden names."""
    return sorted(p for p in workspace.inbox.iterdir() if not p.name.startswith(".") and p != workspace.inbox_archive)


def unexpected_entry(path: Path) -> str:
    """'' for a file that may be a rating batch, else why it is not one."""
    if not path.is_file():
        return "not a file: drop rating files directly into the inbox, not in a folder"
    if path.suffix.lower() not in RATINGS_SUFFIXES:
        return (
            f"unexpected file name {path.name!r}: rating batches are tab-separated files ending in "
            f"{' or '.join(sorted(RATINGS_SUFFIXES))}; rename it and drop it into the inbox again"
        )
    return ""


def ratings_kind(path: Path) -> TableFormat:
    """Crowd or expert, by file name first (as delivered by the rating vendors), else by content."""
    name = path.name.lower()
    if "crowd" in name:
        return CROWD
    if "expert" in name:
        return EXPERT
    first = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()][:1]
    fields = first[0].split("\t") if first else []
    if len(fields) == 5 and all(f.strip().isdigit() for f in fields[2:]) and "." not in fields[2]:
        return EXPERT
    return CROWD


def validate_batch(
    path: Path, train_images: set[str] | None, known_query_ids: set[str] | None
) -> tuple[TableFormat, pd.DataFrame, int]:
    """The batch's rows after its table contract and the reference checks; raises on bad input."""
    from data_contracts.runner import enforce
    from data_contracts.tables import TABLE_CONTRACTS

    fmt = ratings_kind(path)
    frame = read_table(fmt, path)
    contract, prepare = TABLE_CONTRACTS[fmt.name]
    enforce(prepare(frame) if prepare else frame, contract, str(path))
    if train_images is not None:
        unknown = frame[~frame["image"].isin(train_images)]
        if len(unknown):
            lines = ", ".join(f"line {r.line}: {r.image}" for r in unknown.head(5).itertuples())
            raise ValueError(
                f"{path}: column 'image': {len(unknown)} row(s) name images not in the training folder, e.g. {lines}"
            )
    dropped = 0
    if known_query_ids is not None:
        known = frame["query_id"].isin(known_query_ids)
        dropped = int((~known).sum())
        frame = frame[known]
    return fmt, frame.reset_index(drop=True), dropped


def _move(source: Path, target_dir: Path, prefix: str) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{prefix}-{source.name}"
    shutil.move(str(source), target)
    return target


def _quarantine(workspace: Workspace, path: Path, stamp: str, bid: str, reason: str) -> BatchOutcome:
    target = _move(path, workspace.quarantine, f"{stamp}-{bid or 'entry'}")
    write_text_atomic(target.with_name(target.name + ".reason.txt"), reason + "\n")
    return BatchOutcome(path.name, "quarantined", "unknown", bid, reason=reason)


def merged_batch_ids(workspace: Workspace) -> set[str]:
    return {p.stem.split("-", 1)[1] for p in workspace.ratings_batches.glob("*.parquet")}


def process_inbox(
    workspace: Workspace, train_images: set[str] | None = None, known_query_ids: set[str] | None = None
) -> list[BatchOutcome]:
    """Validate and merge every file in the inbox; returns one outcome per file."""
    outcomes = []
    with workspace.lock(STORE_LOCK):
        # Listed under the lock: a run that listed before waiting would find files another run already moved.
        files = inbox_entries(workspace)
        merged = merged_batch_ids(workspace)
        for path in files:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            unexpected = unexpected_entry(path)
            if unexpected:
                outcomes.append(
                    _quarantine(workspace, path, stamp, batch_id(path) if path.is_file() else "", unexpected)
                )
                continue
            bid = batch_id(path)
            if bid in merged:
                _move(path, workspace.inbox_archive, f"{stamp}-duplicate-{bid}")
                outcomes.append(
                    BatchOutcome(path.name, "duplicate", "unknown", bid, reason=f"batch {bid} was merged before")
                )
                continue
            try:
                fmt, frame, dropped = validate_batch(path, train_images, known_query_ids)
            except Exception as err:  # any failure quarantines the file; the reason file says why
                outcomes.append(_quarantine(workspace, path, stamp, bid, str(err)))
                continue
            frame = frame.drop(columns=["line"]).assign(
                batch_id=bid, source_file=path.name, merged_at=stamp, kind=fmt.name
            )
            write_parquet_atomic(workspace.ratings_batches / f"{stamp}-{bid}.parquet", frame)
            merged.add(bid)
            _move(path, workspace.inbox_archive, f"{stamp}-{bid}")
            outcomes.append(
                BatchOutcome(path.name, "merged", fmt.name, bid, rows=len(frame), dropped_unknown_text=dropped)
            )
    return outcomes


@dataclass(frozen=True)
class RatingsStore:
    """Every merged batch's rows, by kind, oldest batch first (empty frames when none)."""

    crowd: pd.DataFrame
    expert: pd.DataFrame

    def known_only(self, query_ids: set[str]) -> RatingsStore:
        """The rows whose caption id is known (a batch may name captions of another dataset version)."""
        return RatingsStore(*(f[f["query_id"].isin(query_ids)] if len(f) else f for f in (self.crowd, self.expert)))


def load_ratings_store(workspace: Workspace) -> RatingsStore:
    """Every merged batch, by kind, oldest first (so a later batch's rating of a pair wins on merge)."""
    frames: dict[str, list[pd.DataFrame]] = {CROWD.name: [], EXPERT.name: []}
    for path in sorted(workspace.ratings_batches.glob("*.parquet")):
        frame = pd.read_parquet(path)
        frames[str(frame["kind"].iloc[0])].append(frame)
    crowd, expert = (
        pd.concat(frames[k], ignore_index=True) if frames[k] else pd.DataFrame() for k in (CROWD.name, EXPERT.name)
    )
    return RatingsStore(crowd=crowd, expert=expert)


def merge_ratings(base: pd.DataFrame, extra: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Base ratings plus store batches; a pair rated again takes its newest rating."""
    if extra is None or extra.empty:
        return base
    extra = extra[list(columns)].copy()
    combined = pd.concat([base[list(columns)], extra], ignore_index=True)
    combined = combined.drop_duplicates(["image", "query_id"], keep="last").reset_index(drop=True)
    combined.insert(0, "line", range(1, len(combined) + 1))
    return combined
