"""The search commands of the CLI: search (--json, --html), score (streamed CSV), index, and clear failures."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from imgsearch_cli.main import app
from tasks.safety.text_screen import NOTICE

runner = CliRunner()


@pytest.fixture
def home(search_setup, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_HOME", str(search_setup.workspace.root))
    return search_setup


def test_search_json(home):
    result = runner.invoke(app, ["search", "a dog jumps over a fence", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["query"] == "a dog jumps over a fence" and body["refused"] is False and body["notice"] is None
    assert len(body["results"]) == 4
    for hit in body["results"]:
        assert set(hit) == {"image", "path", "score"} and 0 <= hit["score"] <= 1
        assert hit["image"] in home.searchable and hit["path"] == str(home.gallery.resolve() / hit["image"])
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_plain_and_refused(home):
    plain = runner.invoke(app, ["search", "a man"])
    assert plain.exit_code == 0 and len(plain.output.strip().splitlines()) == 5
    refused = runner.invoke(app, ["search", "a little girl playing", "--json"])
    assert refused.exit_code == 0
    assert json.loads(refused.output) == {
        "query": "a little girl playing",
        "refused": True,
        "notice": NOTICE,
        "results": [],
    }
    assert runner.invoke(app, ["search", "a little girl playing"]).output.strip() == NOTICE


def test_search_html_page(home, tmp_path):
    page = tmp_path / "out" / "results.html"
    result = runner.invoke(app, ["search", "a dog", "-k", "3", "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert page.stat().st_mode & 0o777 == 0o666 & ~umask  # like any file the user writes, not the temp file's 0600
    assert text.count('<img src="data:image/jpeg;base64,') == 3 and "score 0." in text
    refused = tmp_path / "refused.html"
    runner.invoke(app, ["search", "toddlers at the beach", "--html", str(refused)])
    assert NOTICE in refused.read_text() and "<img" not in refused.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["search", ""],
        ["search", "   "],
        ["search", "x" * 501],
        ["search", "a dog", "-k", "0"],
        ["search", "a dog", "-k", "101"],
    ],
)
def test_search_bad_input_exits_2(home, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "bad query" in result.output


def test_score_streams_a_csv_in_batches(home, tmp_path, monkeypatch):
    from tasks.search.searcher import Searcher

    batches = []
    original = Searcher.score_pairs

    def spy(self, texts, paths):
        batches.append(len(texts))
        return original(self, texts, paths)

    monkeypatch.setattr(Searcher, "score_pairs", spy)
    # image paths relative to the CSV's folder and absolute ones both work
    (tmp_path / "imgs").symlink_to(home.gallery)
    ok = home.searchable
    rows = [
        (f"imgs/{ok[0]}", "a dog jumps over a fence"),
        (str(home.gallery / ok[1]), "a man in a red shirt"),
        (f"imgs/{ok[2]}", "a little girl in pink"),  # flagged text
        (f"imgs/{home.flagged_by('captions')[0]}", "a dog on the grass"),  # image flagged by its captions
        (f"imgs/{home.flagged_by('detector')[0]}", "a dog on the grass"),  # image flagged by the detector
        (f"imgs/{ok[3]}", 'quoted, "text" with a comma'),
        (f"imgs/{ok[0]}", "a dog jumps over a fence"),
    ]
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["image", "query_text"]).assign(extra=range(len(rows))).to_csv(pairs, index=False)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(pairs), "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "scored 4 of 7 rows (3 refused)" in result.output
    assert batches == [2, 2, 2, 1]
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 7 and list(table.columns) == ["image", "query_text", "extra", "score", "refused", "notice"]
    assert table["extra"].tolist() == list(range(7)) and table["query_text"][5] == 'quoted, "text" with a comma'
    refused = table["refused"].astype(str) == "True"
    assert refused.tolist() == [False, False, True, True, True, False, False]
    assert (table.loc[refused, "score"] == "").all() and (table.loc[refused, "notice"] == NOTICE).all()
    scores = table.loc[~refused, "score"].astype(float)
    assert scores.between(0, 1).all() and (table.loc[~refused, "notice"] == "").all()
    assert scores.iloc[0] == pytest.approx(scores.iloc[-1])


def test_score_default_output_and_bad_tables(home, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"image": [str(home.gallery / home.searchable[0])], "query_text": ["a dog"]}).to_csv(
        pairs, index=False
    )
    assert runner.invoke(app, ["score", str(pairs)]).exit_code == 0
    assert len(pd.read_csv(tmp_path / "pairs.scored.csv")) == 1

    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"img": ["x.jpg"], "text": ["a dog"]}).to_csv(wrong, index=False)
    result = runner.invoke(app, ["score", str(wrong)])
    assert result.exit_code == 1 and "missing column(s)" in result.output

    missing = tmp_path / "missing.csv"
    pd.DataFrame({"image": ["nope.jpg"], "query_text": ["a dog"]}).to_csv(missing, index=False)
    result = runner.invoke(app, ["score", str(missing), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "not found" in result.output and not (tmp_path / "m.csv").exists()
    assert runner.invoke(app, ["score", str(tmp_path / "absent.csv")]).exit_code == 2


def test_index_command(home, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in home.searchable[:3] + home.flagged_by("captions")[:1]:
        shutil.copy2(home.gallery / name, folder / name)
    Image.new("RGB", (8, 8)).save(folder / "not-a-jpeg.png")  # the contracts accept JPEG only, so does the index
    result = runner.invoke(app, ["index", str(folder), "--name", "cli-photos"])
    assert result.exit_code == 0, result.output
    assert "indexed 3 searchable images, 1 hidden as showing children, into 'cli-photos'" in result.output
    body = json.loads(runner.invoke(app, ["search", "a dog", "-k", "10", "--json", "--index", "cli-photos"]).output)
    assert {h["image"] for h in body["results"]} == set(home.searchable[:3])
    assert runner.invoke(app, ["index", str(tmp_path / "nope")]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["index", str(empty), "--name", "empty"])
    assert result.exit_code == 1 and "no .jpg/.jpeg images" in result.output


def test_clear_errors_without_champion_or_index(home, tmp_path, monkeypatch):
    missing_index = runner.invoke(app, ["search", "a dog", "--index", "never-built"])
    assert (
        missing_index.exit_code == 1
        and "no gallery index" in missing_index.output
        and "imgsearch index" in missing_index.output
    )

    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path / "fresh"))
    for args in (["search", "a dog"], ["index", str(home.gallery)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "no champion model" in result.output, args
    pairs = tmp_path / "p.csv"
    pairs.write_text("image,query_text\nx.jpg,a dog\n")
    result = runner.invoke(app, ["score", str(pairs)])
    assert result.exit_code == 1 and "no champion model" in result.output
