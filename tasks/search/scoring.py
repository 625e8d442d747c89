"""Scoring a table of (image, query_text) pairs in batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.search.searcher import Searcher


@dataclass(frozen=True)
class ScoredTable:
    rows: int
    refused: int

    @property
    def scored(self) -> int:
        return self.rows - self.refused


def score_table(searcher: Searcher, source: Path, out: Path, batch_size: int = 5000) -> ScoredTable:
    """Stream a CSV with `image` (a path) and `query_text` columns into `out` with a `score` column.

    Batches keep memory flat, so a million rows fit; relative image paths are read relative to the
    CSV's folder. The output appears atomically when every row is scored.
    """
    from tasks.workspace import atomic_path

    source = Path(source)
    header = pd.read_csv(source, nrows=0).columns
    missing = [c for c in ("image", "query_text") if c not in header]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; found {list(header)}")
    rows = refused = 0
    with atomic_path(Path(out)) as tmp:
        first = True
        for batch in pd.read_csv(
            source, chunksize=batch_size, dtype={"image": str, "query_text": str}, keep_default_na=False
        ):
            paths = [p if Path(p).is_absolute() else source.parent / p for p in batch["image"]]
            results = searcher.score_pairs(batch["query_text"].tolist(), paths)
            chunk = batch.copy()
            chunk["score"] = [r.score for r in results]
            chunk["refused"] = [r.refused for r in results]
            chunk["notice"] = [r.notice or "" for r in results]
            chunk.to_csv(tmp, mode="w" if first else "a", header=first, index=False)
            first = False
            rows += len(chunk)
            refused += int(chunk["refused"].sum())
    return ScoredTable(rows, refused)
