"""EDA tables on tiny frames, and the report files it writes."""

import pandas as pd
import pytest
from markupsafe import escape

from tasks.eda.report import (
    captions_per_image,
    crowd_vs_expert,
    eda_tables,
    expert_agreement,
    markdown_summary,
    top_lemmas,
    write_eda_report,
)

EXPERT = pd.DataFrame(
    {
        "image": ["x.jpg", "x.jpg", "y.jpg"],
        "query_id": ["a.jpg#0", "b.jpg#0", "a.jpg#0"],
        "expert_1": [1, 4, 2],
        "expert_2": [1, 4, 3],
        "expert_3": [1, 3, 4],
    }
)
PAIRS = pd.DataFrame(
    {
        "image": ["x.jpg", "x.jpg", "y.jpg", "z.jpg"],
        "query_id": ["a.jpg#0", "b.jpg#0", "a.jpg#0", "b.jpg#0"],
        "query_text": ["a dog runs", "two boys", "a dog runs", "two boys"],
        "target": [0.0, 0.9, 0.6, 0.25],
        "expert_score": [0.0, 0.9, 0.6, float("nan")],
        "crowd_share": [0.0, 1.0, float("nan"), 0.25],
        "source": ["both", "both", "expert", "crowd"],
    }
)
TEXTS = pd.DataFrame(
    {"query_id": ["a.jpg#0", "a.jpg#1", "b.jpg#0"], "query_text": ["A dog runs", "Dogs running", "Two boys"]}
)


def test_expert_agreement():
    table = expert_agreement(EXPERT).set_index("pair")
    assert table.loc["expert_1 vs expert_2", "exact_agreement"] == pytest.approx(2 / 3)
    assert table.loc["all three equal", "exact_agreement"] == pytest.approx(1 / 3)
    assert table.loc["at least two equal", "exact_agreement"] == pytest.approx(2 / 3)


def test_crowd_vs_expert_uses_pairs_with_both():
    row = crowd_vs_expert(PAIRS).iloc[0]
    assert row["pairs_with_both"] == 2 and row["mean_abs_difference"] == pytest.approx(0.05)


def test_captions_per_image_and_lemmas():
    assert captions_per_image(TEXTS).values.tolist() == [[1, 1], [2, 1]]
    lemmas = top_lemmas(TEXTS["query_text"]).set_index("lemma")["count"]
    assert lemmas["dog"] == 2 and "a" not in lemmas


def test_report_files_are_written(tmp_path):
    tables = eda_tables(EXPERT, PAIRS, TEXTS, {"boy": 1}, {"pairs_before": 4, "pairs_after": 2})
    report = write_eda_report(tables, PAIRS, tmp_path / "eda")
    names = {p.name for p in (tmp_path / "eda").iterdir()}
    assert {
        "report.html",
        "targets.png",
        "expert_scores.png",
        "crowd_vs_expert.png",
        "captions_per_image.png",
        "top_lemmas.png",
        "flagged_terms.png",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    page = report.html.read_text()
    assert "expert agreement" in page and "targets.png" in page and "pairs_before" in page
    for png in report.figures.values():
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| boy | 1 |" in markdown_summary(report)


def test_figures_have_captions_in_words(tmp_path):
    tables = eda_tables(EXPERT, PAIRS, TEXTS, {"boy": 1}, {})
    report = write_eda_report(tables, PAIRS, tmp_path / "eda", texts=TEXTS)
    page = report.html.read_text()
    assert "caption_length.png" in page and "ratings_per_image.png" in page
    for name in report.figures:
        caption = report.captions[name]
        assert len(caption.split()) >= 8 and f"<figcaption>{escape(caption)}</figcaption>" in page
    assert "<figcaption>targets</figcaption>" not in page and report.skipped == []


def test_a_plot_of_a_single_value_is_said_in_words_instead(tmp_path):
    # one caption per image (as on practicum-dev), every image rated twice, every caption three words long
    texts = pd.DataFrame({"query_id": ["x.jpg#0", "y.jpg#0"], "query_text": ["a dog runs", "two boys play"]})
    pairs = PAIRS[PAIRS["image"] != "z.jpg"].assign(image=["x.jpg", "x.jpg", "y.jpg"]).iloc[:2]
    pairs = pd.concat([pairs, pairs.assign(image="y.jpg")], ignore_index=True)
    tables = eda_tables(EXPERT, pairs, texts, {}, {})
    report = write_eda_report(tables, pairs, tmp_path / "eda", texts=texts)
    assert not {"captions_per_image", "ratings_per_image", "caption_length", "flagged_terms"} & set(report.figures)
    assert not (tmp_path / "eda" / "captions_per_image.png").exists()
    page = report.html.read_text()
    assert "all 2 images have 1 caption(s) each" in page
    assert "every image has 2 rated caption(s)" in page and "every caption has 3 word(s)" in page
    assert "no caption matched the screen" in page
    assert "not plotted: Captions per image" in markdown_summary(report)
