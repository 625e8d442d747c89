"""The training run's comparison as markdown and HTML."""

from __future__ import annotations

import pandas as pd

from tasks.html import render

SHOWN_METRICS = [
    "rmse",
    "mae",
    "tau_c",
    "val_r1",
    "val_mrr",
    "r1",
    "r5",
    "r10",
    "mrr",
    "ndcg10",
    "safe_r1",
    "safe_mrr",
    "safe_ndcg10",
]


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
