"""The training run's comparison as markdown and HTML, its plots, and the notes that head it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.html import render
from tasks.training.metrics import PREFIX_EXPLANATIONS, SHOWN_METRICS, explain_column

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


@dataclass(frozen=True)
class HeadToHead:
    """The run's best model (the challenger) beside the registry's champion, and what promotion decided."""

    challenger: str
    champion: str
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    decision: str
    how: str = ""  # where the champion's numbers come from

    def rows(self, columns: list[str]) -> list[tuple[str, list[str]]]:
        def shown(values: dict[str, float], c: str) -> str:
            value = values.get(c)
            return "" if value is None or pd.isna(value) else f"{value:.4f}"

        def change(c: str) -> str:
            a, b = self.challenger_metrics.get(c), self.champion_metrics.get(c)
            return "" if a is None or b is None or pd.isna(a) or pd.isna(b) else f"{a - b:+.4f}"

        return [
            (f"challenger: {self.challenger}", [shown(self.challenger_metrics, c) for c in columns]),
            (f"champion: {self.champion}", [shown(self.champion_metrics, c) for c in columns]),
            ("challenger − champion", [change(c) for c in columns]),
        ]


def _figure(width: float, height: float):
    # A bare Figure (no pyplot) keeps no global state and needs no GUI backend.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80, layout="constrained")


def _save(fig, target: Path) -> Path:
    from tasks.workspace import atomic_path

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


def recall_curves_figure(curves: dict[str, list[float]], n_images: int, queries: str, target: Path) -> Path:
    """Recall@k for k = 1..10, one line per model, with the chance level k / images for reference."""
    fig = _figure(6.4, 4.0)
    ax = fig.subplots()
    for name, curve in curves.items():
        ks = np.arange(1, len(curve) + 1)
        ax.plot(ks, curve, marker="o", markersize=4, label=name)
    if n_images:
        ks = np.arange(1, 11)
        ax.plot(ks, np.minimum(ks / n_images, 1.0), linestyle=":", color="grey", label="chance")
    ax.set(
        xlabel="k (images shown)",
        ylabel="Recall@k",
        title=f"Recall@k on {queries} queries ({n_images} images)",
        xticks=range(1, 11),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, target)


def calibration_bins(pred: np.ndarray, expert: np.ndarray, max_bins: int = 10) -> pd.DataFrame:
    """Mean predicted score per expert score (pairs without an expert score are left out). Mean expert scores
    take few values (ninths for three raters); more than `max_bins` values are grouped in equal-width bins."""
    keep = ~np.isnan(expert)
    frame = pd.DataFrame({"expert": np.round(expert[keep], 3), "pred": pred[keep]})
    if frame["expert"].nunique() > max_bins:
        edges = np.linspace(0.0, 1.0, max_bins + 1)
        frame["bin"] = np.clip(np.digitize(frame["expert"], edges[1:-1]), 0, max_bins - 1)
        out = frame.groupby("bin").agg(
            expert=("expert", "mean"), mean_predicted=("pred", "mean"), pairs=("pred", "size")
        )
        return out.reset_index(drop=True)
    out = frame.groupby("expert")["pred"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "mean_predicted", "size": "pairs"})


def calibration_figure(pred: np.ndarray, expert: np.ndarray, model: str, target: Path) -> Path:
    """Predicted score against the mean expert score: each pair (jittered sideways) and the mean per expert score."""
    fig = _figure(5.6, 4.2)
    ax = fig.subplots()
    keep = ~np.isnan(expert)
    jitter = np.random.default_rng(0).uniform(-0.015, 0.015, keep.sum())
    ax.scatter(expert[keep] + jitter, pred[keep], s=6, alpha=0.25, label="validation pair")
    bins = calibration_bins(pred, expert)
    ax.plot(bins["expert"], bins["mean_predicted"], marker="o", color="tab:red", label="mean prediction")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="prediction = expert")
    ax.set(
        xlabel="mean expert score (0 = no match, 1 = exact match)",
        ylabel="predicted score",
        title=f"{model}: predicted vs expert ({int(keep.sum())} pairs)",
        xlim=(-0.05, 1.05),
        ylim=(-0.05, 1.05),
    )
    ax.legend(fontsize="small", loc="upper left")
    return _save(fig, target)


def metrics_html(
    metrics: pd.DataFrame,
    title: str,
    notes: list[str],
    best: str | None = None,
    figures: list[tuple[str, str]] | None = None,
    head_to_head: HeadToHead | None = None,
) -> str:
    """The report page: notes, the table (the best model's row marked), what each column means, the
    champion-vs-challenger table and the figures (`(file name beside the page, caption)`)."""
    columns = [c for c in SHOWN_METRICS if c in metrics.columns]
    rows = [
        (str(name), ["" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in columns]) for name, row in metrics.iterrows()
    ]
    return render(
        "tasks.training",
        "comparison.html.j2",
        title=title,
        notes=notes,
        columns=columns,
        rows=rows,
        best=best,
        explanations=[(c, explain_column(c)) for c in columns],
        prefixes=list(PREFIX_EXPLANATIONS.values()),
        figures=figures or [],
        head_to_head=head_to_head,
        head_to_head_rows=head_to_head.rows(columns) if head_to_head else [],
    )


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
