"""Values from input tables never reach a page we write as markup: Data Docs, EDA, training and search reports.

The probe is the stored XSS found in issue 13: an image name `<img src=x onerror=alert(1)>.png` in
train_dataset.csv appeared unescaped in the GX Data Docs after `imgsearch validate`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from data_contracts import ContractError
from data_contracts.runner import escape_values
from tasks.ingest.dataset import ingest_dataset

PROBE = "<img src=x onerror=alert(1)>"
RAW_MARKERS = ("<img src=x onerror", "<svg onload", "<script>alert")


def raw_markup_in(pages: list[Path]) -> list[str]:
    return [f"{p.name}: {m}" for p in pages for m in RAW_MARKERS if m in p.read_text(errors="replace")]


def append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


def _train_image(data: Path) -> None:
    append_line(data / "train_dataset.csv", f"{PROBE}.png,{PROBE}.png#0,a dog")


def _expert_query_id(data: Path) -> None:
    image = sorted((data / "train_images").iterdir())[0].name
    append_line(data / "ExpertAnnotations.tsv", f"{image}\t<script>alert(1)</script>.jpg#0\t1\t2\t3")


def _test_images_name(data: Path) -> None:
    append_line(data / "test_images.csv", "<svg onload=alert(1)>.jpg")


def _image_file_name(data: Path) -> None:
    # A file that does not decode, named with markup: its name and PIL's error (which repeats it) are shown.
    (data / "train_images" / "<svg onload=alert(1)>.jpg").write_bytes(b"not a jpeg")


@pytest.mark.parametrize("inject", [_train_image, _expert_query_id, _test_images_name, _image_file_name])
def test_data_docs_escape_values_from_the_inputs(sample_copy, tmp_path, inject):
    inject(sample_copy)
    docs = tmp_path / "docs"
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy, docs_dir=docs)
    pages = sorted(docs.rglob("*.html"))
    failed = [p for p in pages if err.value.result.contract in p.name and "validations" in p.parts]
    assert failed, "the failed validation has a Data Docs page"
    assert raw_markup_in(pages) == []
    assert "&lt;" in failed[0].read_text(), "the bad value is shown, escaped"
    # The terminal message keeps the value as it is in the file (repr), to be found with grep.
    assert "<" in str(err.value)


def test_escape_values_walks_nested_results():
    result = {"partial_unexpected_list": ["<b>"], "partial_unexpected_counts": [{"value": "a&b", "count": 1}], "n": 3}
    assert escape_values(result) == {
        "partial_unexpected_list": ["&lt;b&gt;"],
        "partial_unexpected_counts": [{"value": "a&amp;b", "count": 1}],
        "n": 3,
    }


def test_eda_report_escapes_caption_words(tmp_path):
    from tasks.eda.report import eda_tables, write_eda_report

    expert = pd.DataFrame(
        {"image": ["x.jpg"], "query_id": ["a.jpg#0"], "expert_1": [1], "expert_2": [2], "expert_3": [3]}
    )
    pairs = pd.DataFrame(
        {
            "image": ["x.jpg"],
            "query_id": ["a.jpg#0"],
            "query_text": [f"{PROBE} dog"],
            "target": [0.5],
            "expert_score": [0.5],
            "crowd_share": [float("nan")],
            "source": ["expert"],
        }
    )
    texts = pd.DataFrame({"query_id": ["a.jpg#0"], "query_text": [f"{PROBE} <script>alert(1)</script>"]})
    tables = eda_tables(expert, pairs, texts, {"<script>alert(2)": 1}, {"pairs_before": 1})
    report = write_eda_report(tables, pairs, tmp_path / "eda", title=f"EDA {PROBE}")
    assert raw_markup_in([report.html]) == []


def test_training_report_escapes_names_and_notes():
    from tasks.training.report import metrics_html

    metrics = pd.DataFrame({"rmse": [0.2]}, index=[f"{PROBE}model"])
    page = metrics_html(metrics, title=f"run {PROBE}", notes=[f"data_dir /data/{PROBE}"])
    assert not any(m in page for m in RAW_MARKERS) and "&lt;img" in page
    # the champion's and the figures' words too
    from tasks.training.report import HeadToHead

    duel = HeadToHead(f"{PROBE}new", f"{PROBE}old", {"rmse": 0.1}, {"rmse": 0.2}, f"kept {PROBE}", f"how {PROBE}")
    page = metrics_html(metrics, "run", [], best=f"{PROBE}model", figures=[("a.png", PROBE)], head_to_head=duel)
    assert not any(m in page for m in RAW_MARKERS) and "&lt;img" in page


def test_search_report_escapes_query_and_image_names(tmp_path):
    from tasks.search.report import search_page
    from tasks.search.searcher import Hit, SearchResult

    image = tmp_path / f"{PROBE}.jpg"
    Image.new("RGB", (8, 8)).save(image, format="JPEG")
    result = SearchResult(
        query=f"a dog {PROBE}", refused=False, notice=None, results=[Hit(image.name, str(image), 0.5)]
    )
    page = search_page(result)
    assert not any(m in page for m in RAW_MARKERS) and "&lt;img" in page
