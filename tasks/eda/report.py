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


@dataclass(frozen=True)
class Figures:
    """The report's plots (name -> PNG), a caption in words for each, and what was not plotted and why."""

    paths: dict[str, Path]
    captions: dict[str, str]
    skipped: list[str]


def words_per_caption(texts: pd.DataFrame) -> pd.Series:
    return texts["query_text"].astype(str).str.count(r"\S+")


def _plot_figures(tables: EdaTables, pairs: pd.DataFrame, texts: pd.DataFrame, out_dir: Path) -> Figures:  # noqa: PLR0912, PLR0915 -- one figure after another
    paths: dict[str, Path] = {}
    captions: dict[str, str] = {}
    skipped: list[str] = []

    def keep(name: str, fig, caption: str) -> None:
        paths[name] = _save(fig, out_dir / f"{name}.png")
        captions[name] = caption

    fig = _figure()
    ax = fig.subplots()
    for source, group in pairs.groupby("source"):
        ax.hist(
            group["target"], bins=np.linspace(0, 1, 13), histtype="step", linewidth=2, label=f"{source} ({len(group)})"
        )
    ax.set(xlabel="target", ylabel="pairs", title="Target distribution by rating source", yscale="log")
    ax.legend()
    keep(
        "targets",
        fig,
        "The training target of each image-caption pair, by who rated it (expert, crowd or both); log scale. "
        "Most crowd-only pairs are clear mismatches (target 0).",
    )

    fig = _figure()
    ax = fig.subplots()
    scores = tables.tables["expert_scores"]
    width = 0.25
    for i, col in enumerate(EXPERT_COLUMNS):
        ax.bar(scores["score"] + (i - 1) * width, scores[col], width=width, label=col)
    ax.set(xlabel="score (1 = no match, 4 = exact match)", ylabel="pairs", title="Expert scores")
    ax.set_xticks([1, 2, 3, 4])
    ax.legend()
    keep(
        "expert_scores",
        fig,
        "How often each of the three experts gave each score from 1 (no match) to 4 (exact match); "
        "a rater who leans to one side shows as a taller or shorter bar of its colour.",
    )

    both = pairs.dropna(subset=["expert_score", "crowd_share"])
    if len(both) >= 2 and both["expert_score"].nunique() > 1:
        fig = _figure(5.2, 4.2)
        ax = fig.subplots()
        jitter = np.random.default_rng(0).uniform(-0.015, 0.015, len(both))
        ax.scatter(both["expert_score"] + jitter, both["crowd_share"], s=6, alpha=0.2, label="pair")
        means = both.groupby(both["expert_score"].round(3))["crowd_share"].mean()
        ax.plot(means.index, means.to_numpy(), marker="o", color="tab:red", label="mean crowd share")
        ax.set(
            xlabel="mean expert score (0 = no match, 1 = exact match)",
            ylabel="crowd share of yes",
            title=f"Crowd vs expert ({len(both)} pairs rated by both)",
            xlim=(-0.05, 1.05),
            ylim=(-0.05, 1.05),
        )
        ax.legend(loc="upper left", fontsize="small")
        keep(
            "crowd_vs_expert",
            fig,
            "On pairs rated by both, the share of crowd workers who said the caption matches, against the experts' "
            "mean score (dots jittered sideways); the red line is the mean crowd share per expert score.",
        )
    else:
        skipped.append(f"Crowd vs expert: only {len(both)} pair(s) rated by both, too few to plot.")

    per_image = pairs.groupby("image").size()
    if per_image.nunique() > 1:
        fig = _figure()
        ax = fig.subplots()
        low, high = int(per_image.min()), int(per_image.max())
        # one bar per count when the counts span few values, else 30 bins
        bins = np.arange(low, high + 2) - 0.5 if high - low <= 40 else 30
        ax.hist(per_image, bins=bins, color="tab:green")
        ax.set(xlabel="rated captions per image", ylabel="images", title=f"Ratings per image ({len(per_image)} images)")
        keep(
            "ratings_per_image",
            fig,
            f"How many captions were rated against each image (median {per_image.median():.0f}): "
            "an image with few ratings teaches the model little.",
        )
    elif len(per_image):
        skipped.append(f"Ratings per image: every image has {per_image.iloc[0]} rated caption(s).")

    caps = tables.tables["captions_per_image"]
    if len(caps) > 1:
        fig = _figure()
        ax = fig.subplots()
        ax.bar(caps["captions"].astype(str), caps["images"])
        ax.set(xlabel="captions written for the image", ylabel="images", title="Captions per image")
        keep("captions_per_image", fig, "How many captions were written for each image (query ids image#n).")
    elif len(caps):
        row = caps.iloc[0]
        skipped.append(f"Captions per image: all {row['images']} images have {row['captions']} caption(s) each.")

    lengths = words_per_caption(texts)
    if lengths.nunique() > 1:
        fig = _figure()
        ax = fig.subplots()
        ax.hist(lengths, bins=np.arange(lengths.min(), lengths.max() + 2) - 0.5, color="tab:purple")
        ax.set(xlabel="words", ylabel="captions", title=f"Caption length ({len(lengths)} captions)")
        keep(
            "caption_length",
            fig,
            f"Words per caption (median {lengths.median():.0f}, longest {lengths.max()}); "
            "the text encoder sees short, descriptive sentences.",
        )
    elif len(lengths):
        skipped.append(f"Caption length: every caption has {lengths.iloc[0]} word(s).")

    lemmas = tables.tables["top_lemmas"].iloc[::-1]
    if len(lemmas):
        fig = _figure(6.0, 5.0)
        ax = fig.subplots()
        ax.barh(lemmas["lemma"], lemmas["count"])
        ax.set(xlabel="texts", title="Most frequent lemmas (no stop words)")
        keep("top_lemmas", fig, "The words captions use most, as dictionary forms, without stop words.")

    terms = tables.tables["flagged_terms"].iloc[::-1]
    if len(terms):
        fig = _figure()
        ax = fig.subplots()
        ax.barh(terms["term"], terms["texts"], color="tab:red")
        ax.set(xlabel="flagged texts", title="Child-content terms matched")
        keep(
            "flagged_terms",
            fig,
            "Terms of the child-content screen and how many captions each matched; those pairs are left out.",
        )
    else:
        skipped.append("Child-content terms: no caption matched the screen.")
    return Figures(paths, captions, skipped)


def cell(value: object) -> str:
    """A table cell as the report shows it: floats to three places, missing values blank."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def render_html(
    tables: EdaTables,
    figures: dict[str, Path],
    title: str,
    captions: dict[str, str] | None = None,
    skipped: list[str] | None = None,
) -> str:
    """The report page (`templates/report.html.j2`); every value is escaped by the template."""
    frames = [
        {
            "name": name.replace("_", " "),
            "columns": [str(c) for c in frame.columns],
            "rows": [[cell(v) for v in row] for row in frame.itertuples(index=False)],
        }
        for name, frame in tables.tables.items()
    ]
    words = captions or {}
    shown_figures = [(path.name, words.get(name, name.replace("_", " "))) for name, path in figures.items()]
    return render(
        "tasks.eda",
        "report.html.j2",
        title=title,
        safety=tables.safety,
        tables=frames,
        figures=shown_figures,
        skipped=skipped or [],
    )


@dataclass(frozen=True)
class EdaReport:
    directory: Path
    html: Path
    figures: dict[str, Path]
    tables: EdaTables
    captions: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # plots left out, each with the single value it would show


def write_eda_report(
    tables: EdaTables,
    pairs: pd.DataFrame,
    out_dir: Path,
    title: str = "imgsearch EDA",
    texts: pd.DataFrame | None = None,
) -> EdaReport:
    """Write the PNGs and `report.html` into `out_dir` (each file atomically). `texts` (query_id, query_text)
    gives the caption-length plot; without it the captions of `pairs` are used."""
    from tasks.workspace import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if texts is None:
        texts = pairs.drop_duplicates("query_id")[["query_id", "query_text"]]
    figures = _plot_figures(tables, pairs, texts, out_dir)
    page = render_html(tables, figures.paths, title, figures.captions, figures.skipped)
    html = write_text_atomic(out_dir / "report.html", page)
    return EdaReport(html.parent, html, figures.paths, tables, figures.captions, figures.skipped)


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
    lines += [f"- {report.captions.get(name, name)} `{path}`" for name, path in report.figures.items()]
    lines += [f"- not plotted: {reason}" for reason in report.skipped]
    return "\n".join(lines)
