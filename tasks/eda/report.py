"""Exploratory report on the ratings and captions: tables from plain functions, PNG plots and one HTML page.

The tables are computed by pure functions on DataFrames (tested on tiny frames); `write_eda_report`
is the only function that touches the disk, and it writes every file atomically.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.html import render
from tasks.ingest.tables import caption_image
from tasks.ratings.aggregate import EXPERT_COLUMNS
from tasks.safety.normalize import normalize_texts


def expert_score_distribution(expert: pd.DataFrame) -> pd.DataFrame:
    """How often each expert gave each score 1..4."""
    counts = {col: expert[col].value_counts().reindex([1, 2, 3, 4], fill_value=0) for col in EXPERT_COLUMNS}
    out = pd.DataFrame(counts)
    out.index.name = "score"
    return out.reset_index()


def expert_agreement(expert: pd.DataFrame) -> pd.DataFrame:
    """Pairwise exact agreement and Kendall tau-b between experts, plus the full-agreement share."""
    from scipy.stats import kendalltau

    rows = []
    for a, b in itertools.combinations(EXPERT_COLUMNS, 2):
        tau = kendalltau(expert[a], expert[b]).statistic if len(expert) > 1 else np.nan
        rows.append(
            {
                "pair": f"{a} vs {b}",
                "exact_agreement": float((expert[a] == expert[b]).mean()),
                "kendall_tau": float(tau),
            }
        )
    scores = expert[list(EXPERT_COLUMNS)]
    full = float((scores.nunique(axis=1) == 1).mean()) if len(expert) else np.nan
    majority = float((scores.nunique(axis=1) <= 2).mean()) if len(expert) else np.nan
    rows.append({"pair": "all three equal", "exact_agreement": full, "kendall_tau": np.nan})
    rows.append({"pair": "at least two equal", "exact_agreement": majority, "kendall_tau": np.nan})
    return pd.DataFrame(rows)


def crowd_vs_expert(pairs: pd.DataFrame) -> pd.DataFrame:
    """On pairs rated by both: how well the crowd share tracks the expert score."""
    both = pairs.dropna(subset=["expert_score", "crowd_share"])
    if len(both) < 2:
        return pd.DataFrame(
            [{"pairs_with_both": len(both), "pearson": np.nan, "spearman": np.nan, "mean_abs_difference": np.nan}]
        )
    return pd.DataFrame(
        [
            {
                "pairs_with_both": len(both),
                "pearson": float(both["expert_score"].corr(both["crowd_share"])),
                "spearman": float(both["expert_score"].corr(both["crowd_share"], method="spearman")),
                "mean_abs_difference": float((both["expert_score"] - both["crowd_share"]).abs().mean()),
            }
        ]
    )


def target_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Count, mean and share of zero targets per rating source."""
    grouped = pairs.groupby("source")["target"]
    out = pd.DataFrame(
        {
            "pairs": grouped.size(),
            "mean_target": grouped.mean(),
            "share_zero": grouped.apply(lambda t: float((t == 0).mean())),
        }
    )
    return out.reset_index()


def captions_per_image(texts: pd.DataFrame) -> pd.DataFrame:
    """How many images have 1, 2, ... captions written for them (query_id `<image>#n`)."""
    per_image = caption_image(texts["query_id"]).value_counts()
    out = per_image.value_counts().sort_index().rename("images").rename_axis("captions").reset_index()
    return out


def top_lemmas(texts: pd.Series, n: int = 25) -> pd.DataFrame:
    """The most frequent content lemmas (stop words and punctuation removed)."""
    counts = Counter(lemma for doc in normalize_texts(texts.astype(str).tolist()) for lemma in doc.content_lemmas)
    return pd.DataFrame(counts.most_common(n), columns=["lemma", "count"])


def flagged_terms(terms: dict[str, int]) -> pd.DataFrame:
    ranked = sorted(terms, key=lambda term: terms[term], reverse=True)
    return pd.DataFrame({"term": ranked, "texts": [terms[term] for term in ranked]}, columns=["term", "texts"])


@dataclass(frozen=True)
class EdaTables:
    tables: dict[str, pd.DataFrame]
    safety: dict[str, int] = field(default_factory=dict)


def eda_tables(
    expert: pd.DataFrame, pairs: pd.DataFrame, texts: pd.DataFrame, terms: dict[str, int], safety: dict[str, int]
) -> EdaTables:
    """Every table of the report, from the expert table, the aggregated pairs and the known texts."""
    return EdaTables(
        tables={
            "expert_scores": expert_score_distribution(expert),
            "expert_agreement": expert_agreement(expert),
            "crowd_vs_expert": crowd_vs_expert(pairs),
            "targets_by_source": target_summary(pairs),
            "captions_per_image": captions_per_image(texts),
            "top_lemmas": top_lemmas(texts["query_text"]),
            "flagged_terms": flagged_terms(terms),
        },
        safety=dict(safety),
    )


# ---------------------------------------------------------------------------------------------
# Figures and the HTML page.


def _figure(width: float = 6.0, height: float = 3.6):
    # A bare Figure (no pyplot) keeps no global state and needs no GUI backend.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, target: Path) -> Path:
    from tasks.workspace import atomic_path

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


def _plot_figures(tables: EdaTables, pairs: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    figures: dict[str, Path] = {}

    fig = _figure()
    ax = fig.subplots()
    for source, group in pairs.groupby("source"):
        ax.hist(
            group["target"], bins=np.linspace(0, 1, 13), histtype="step", linewidth=2, label=f"{source} ({len(group)})"
        )
    ax.set(xlabel="target", ylabel="pairs", title="Target distribution by rating source", yscale="log")
    ax.legend()
    figures["targets"] = _save(fig, out_dir / "targets.png")

    fig = _figure()
    ax = fig.subplots()
    scores = tables.tables["expert_scores"]
    width = 0.25
    for i, col in enumerate(EXPERT_COLUMNS):
        ax.bar(scores["score"] + (i - 1) * width, scores[col], width=width, label=col)
    ax.set(xlabel="score (1 = no match, 4 = exact match)", ylabel="pairs", title="Expert scores")
    ax.set_xticks([1, 2, 3, 4])
    ax.legend()
    figures["expert_scores"] = _save(fig, out_dir / "expert_scores.png")

    fig = _figure(4.8, 4.2)
    ax = fig.subplots()
    both = pairs.dropna(subset=["expert_score", "crowd_share"])
    ax.scatter(both["expert_score"], both["crowd_share"], s=8, alpha=0.3)
    ax.set(
        xlabel="expert score",
        ylabel="crowd share of yes",
        title=f"Crowd vs expert ({len(both)} pairs)",
        xlim=(-0.05, 1.05),
        ylim=(-0.05, 1.05),
    )
    figures["crowd_vs_expert"] = _save(fig, out_dir / "crowd_vs_expert.png")

    fig = _figure()
    ax = fig.subplots()
    caps = tables.tables["captions_per_image"]
    ax.bar(caps["captions"].astype(str), caps["images"])
    ax.set(xlabel="captions written for the image", ylabel="images", title="Captions per image")
    figures["captions_per_image"] = _save(fig, out_dir / "captions_per_image.png")

    fig = _figure(6.0, 5.0)
    ax = fig.subplots()
    lemmas = tables.tables["top_lemmas"].iloc[::-1]
    ax.barh(lemmas["lemma"], lemmas["count"])
    ax.set(xlabel="texts", title="Most frequent lemmas (no stop words)")
    figures["top_lemmas"] = _save(fig, out_dir / "top_lemmas.png")

    fig = _figure()
    ax = fig.subplots()
    terms = tables.tables["flagged_terms"].iloc[::-1]
    ax.barh(terms["term"], terms["texts"], color="tab:red")
    ax.set(xlabel="flagged texts", title="Child-content terms matched")
    figures["flagged_terms"] = _save(fig, out_dir / "flagged_terms.png")
    return figures


def cell(value: object) -> str:
    """A table cell as the report shows it: floats to three places, missing values blank."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def render_html(tables: EdaTables, figures: dict[str, Path], title: str) -> str:
    """The report page (`templates/report.html.j2`); every value is escaped by the template."""
    frames = [
        {
            "name": name.replace("_", " "),
            "columns": [str(c) for c in frame.columns],
            "rows": [[cell(v) for v in row] for row in frame.itertuples(index=False)],
        }
        for name, frame in tables.tables.items()
    ]
    shown_figures = [(name, path.name) for name, path in figures.items()]
    return render(
        "tasks.eda", "report.html.j2", title=title, safety=tables.safety, tables=frames, figures=shown_figures
    )


@dataclass(frozen=True)
class EdaReport:
    directory: Path
    html: Path
    figures: dict[str, Path]
    tables: EdaTables


def write_eda_report(tables: EdaTables, pairs: pd.DataFrame, out_dir: Path, title: str = "imgsearch EDA") -> EdaReport:
    """Write the PNGs and `report.html` into `out_dir` (each file atomically)."""
    from tasks.workspace import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _plot_figures(tables, pairs, out_dir)
    page = write_text_atomic(out_dir / "report.html", render_html(tables, figures, title))
    return EdaReport(directory=out_dir, html=page, figures=figures, tables=tables)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (pandas' to_markdown needs the optional tabulate)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def markdown_summary(report: EdaReport, max_rows: int = 12) -> str:
    """The report's tables as markdown, for a Prefect artifact."""
    lines = [f"## EDA report\n\nHTML: `{report.html}`\n", "### Safety filter\n", "| count | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.tables.safety.items()]
    for name, frame in report.tables.tables.items():
        lines.append(f"\n### {name.replace('_', ' ')}\n")
        lines.append(markdown_table(frame.head(max_rows)))
    lines.append("\n### Figures\n")
    lines += [f"- {name}: `{path}`" for name, path in report.figures.items()]
    return "\n".join(lines)
