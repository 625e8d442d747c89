"""The training run's comparison as markdown and HTML, and the notes that head it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from tasks.html import render
from tasks.training.metrics import SHOWN_METRICS

if TYPE_CHECKING:
    from tasks.training.data import SplitSummary
    from tasks.training.fit import TrainingOutcome
    from tasks.training.registry import PromotionDecision


def metrics_markdown(metrics: pd.DataFrame) -> str:
    columns = [c for c in SHOWN_METRICS if c in metrics.columns]
    head = "| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    rows = "".join(
        f"| {name} | " + " | ".join("—" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in columns) + " |\n"
        for name, row in metrics.iterrows()
    )
    return head + rows


def metrics_html(metrics: pd.DataFrame, title: str, notes: list[str]) -> str:
    columns = [c for c in SHOWN_METRICS if c in metrics.columns]
    rows = [
        (str(name), ["" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in columns]) for name, row in metrics.iterrows()
    ]
    return render("tasks.training", "comparison.html.j2", title=title, notes=notes, columns=columns, rows=rows)


def run_notes(outcome: TrainingOutcome, split: SplitSummary, version: str, decision: PromotionDecision) -> list[str]:
    """What a reader of the report needs before the table: the winner, its version, the decision, the split."""
    metric = outcome.primary_metric
    best_value = float(pd.to_numeric(outcome.metrics[metric]).loc[outcome.best])
    return [
        f"best of this run: {outcome.best} ({metric} = {best_value:.4f})",
        f"registered as {version}",
        f"promotion: {'yes' if decision.promoted else 'no'} — {decision.reason}",
        f"split: {split.train_pairs} train / {split.val_pairs} validation "
        f"pairs, {split.train_images} / {split.val_images} images, "
        f"{split.val_queries} validation and {split.test_queries} test queries",
        "fit seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in outcome.fit_seconds.items()),
    ]
