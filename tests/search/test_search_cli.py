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
    # the gallery lies outside the CSV's folder, so the allowed base folder is widened to hold both
    base = os.path.commonpath([tmp_path, home.gallery.resolve()])
    result = runner.invoke(app, ["score", str(pairs), "--out", str(out), "--batch-size", "2", "--base-dir", base])
    assert result.exit_code == 0, result.output
    assert "scored 4 of 7 rows (3 refused)" in result.output
    assert batches == [2, 2, 2, 1]
    table = pd.read_csv(out, keep_default_na=False)
    columns = ["image", "query_text", "extra", "score", "refused", "notice", "reason"]
    assert len(table) == 7 and list(table.columns) == columns and (table["reason"] == "").all()
    assert table["extra"].tolist() == list(range(7)) and table["query_text"][5] == 'quoted, "text" with a comma'
    refused = table["refused"].astype(str) == "True"
    assert refused.tolist() == [False, False, True, True, True, False, False]
    assert (table.loc[refused, "score"] == "").all() and (table.loc[refused, "notice"] == NOTICE).all()
    scores = table.loc[~refused, "score"].astype(float)
    assert scores.between(0, 1).all() and (table.loc[~refused, "notice"] == "").all()
    assert scores.iloc[0] == pytest.approx(scores.iloc[-1])


def test_score_default_output_and_bad_tables(home, tmp_path):
    import shutil

    pairs = tmp_path / "pairs.csv"
    shutil.copy2(home.gallery / home.searchable[0], tmp_path / home.searchable[0])
    pd.DataFrame({"image": [str(tmp_path / home.searchable[0])], "query_text": ["a dog"]}).to_csv(pairs, index=False)
    assert runner.invoke(app, ["score", str(pairs)]).exit_code == 0
    assert len(pd.read_csv(tmp_path / "pairs.scored.csv")) == 1

    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"img": ["x.jpg"], "text": ["a dog"]}).to_csv(wrong, index=False)
    result = runner.invoke(app, ["score", str(wrong)])
    assert result.exit_code == 2 and "missing column(s)" in result.output and str(wrong) in result.output

    missing = tmp_path / "missing.csv"
    pd.DataFrame({"image": ["nope.jpg"], "query_text": ["a dog"]}).to_csv(missing, index=False)
    result = runner.invoke(app, ["score", str(missing), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 0 and "1 image file not found" in result.output
    assert pd.read_csv(tmp_path / "m.csv", keep_default_na=False)["reason"].tolist() == ["image file not found"]
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


def test_index_command_updates_and_takes_lookup_options(home, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in home.searchable[:3]:
        shutil.copy2(home.gallery / name, folder / name)
    args = ["index", str(folder), "--name", "cli-ivf", "--kind", "ivf-sq8", "--nprobe", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "built, ivf-sq8 search" in first.output, first.output
    shutil.copy2(home.gallery / home.searchable[3], folder / home.searchable[3])
    (folder / home.searchable[0]).unlink()
    second = runner.invoke(app, args)
    assert "updated (1 added, 1 removed, 0 newly hidden), ivf-sq8 search" in second.output, second.output
    body = json.loads(runner.invoke(app, ["search", "a dog", "-k", "10", "--json", "--index", "cli-ivf"]).output)
    assert {h["image"] for h in body["results"]} == set(home.searchable[1:4])
    for bad in (["--kind", "hnsw"], ["--nprobe", "0"], ["--candidates", "0"]):
        result = runner.invoke(app, ["index", str(folder), "--name", "cli-ivf", *bad])
        assert result.exit_code == 2 and result.output.startswith("bad parameters:"), result.output


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


def test_score_never_aborts_on_bad_rows(home, tmp_path, png_header):
    """Every bad row gets no score and a reason; the good rows around them are scored as usual."""
    import shutil

    folder = tmp_path / "pairs"
    (folder / "imgs").mkdir(parents=True)
    good = folder / "imgs" / home.searchable[0]
    shutil.copy2(home.gallery / home.searchable[0], good)
    (folder / "imgs" / "empty.jpg").write_bytes(b"")
    png_header(folder / "imgs" / "huge.png", 30000, 30000)
    (folder / "imgs" / "garbage.jpg").write_bytes(b"not an image at all" * 10)
    data = good.read_bytes()
    (folder / "imgs" / "truncated.jpg").write_bytes(data[: len(data) * 2 // 3])  # header fine, pixels cut off
    (folder / "imgs" / "dir.jpg").mkdir()
    outside = tmp_path / "outside.jpg"
    shutil.copy2(good, outside)
    (folder / "imgs" / "link.jpg").symlink_to(outside)
    rows = [
        ("imgs/" + good.name, "a dog on the grass", ""),
        ("imgs/empty.jpg", "a dog", "image file is empty"),
        ("imgs/huge.png", "a dog", "image too large"),
        ("imgs/garbage.jpg", "a dog", "not an image file"),
        ("imgs/truncated.jpg", "a dog", "image cannot be decoded"),
        ("imgs/dir.jpg", "a dog", "image path is not a file"),
        ("imgs/missing.jpg", "a dog", "image file not found"),
        ("../../../../etc/passwd", "a dog", "image path outside the allowed folder"),
        ("/etc/passwd", "a dog", "image path outside the allowed folder"),
        (str(outside), "a dog", "image path outside the allowed folder"),
        ("imgs/link.jpg", "a dog", "image path outside the allowed folder"),
        ("", "a dog", "empty image path"),
        ("imgs/" + good.name, "", "empty query_text"),
        ("imgs/" + good.name, "   ", "empty query_text"),
        ("imgs/" + good.name, "\u200b\u200d\ufeff", "empty query_text"),
        ("imgs/" + good.name, "a man on a bike", ""),
    ]
    pairs = folder / "pairs.csv"
    pd.DataFrame([r[:2] for r in rows], columns=["image", "query_text"]).to_csv(pairs, index=False)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(pairs), "--out", str(out), "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    assert f"scored 2 of {len(rows)} rows (0 refused)" in result.output
    assert f"{len(rows) - 2} row(s) not scored" in result.output
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(rows)
    for (image, _, reason), (_, got) in zip(rows, table.iterrows(), strict=True):
        assert got["reason"].startswith(reason) if reason else got["reason"] == "", (image, got["reason"])
        assert (got["score"] == "") == bool(reason), (image, got["score"])
    assert table["score"].iloc[[0, -1]].astype(float).between(0, 1).all()
    # a wider base folder lets the outside file in; the link still resolves there too
    wider = runner.invoke(app, ["score", str(pairs), "--out", str(out), "--base-dir", str(tmp_path)])
    assert wider.exit_code == 0 and f"scored 4 of {len(rows)} rows" in wider.output, wider.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\n\n", "file is empty"),
        (b"image,query_text\nx.jpg,caf\xe9 au lait\n", "not valid UTF-8: byte 0xe9 at line 2"),
        (
            b'image,query_text\nx.jpg,"a dog\ny.jpg,a cat\n',
            "line 2: a quoted field opened on this line is never closed",
        ),
        (b"image,query_text\nx.jpg,a dog,extra\n", "line 2: 3 field(s) where the header has 2"),
        (b"img,text\nx.jpg,a dog\n", "missing column(s)"),
    ],
)
def test_score_unreadable_tables_get_one_line_naming_the_file(home, tmp_path, content, message):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(content)
    result = runner.invoke(app, ["score", str(pairs), "--out", str(tmp_path / "out.csv")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(pairs)) and message in lines[0], result.output
    assert not (tmp_path / "out.csv").exists() and pairs.read_bytes() == content


def test_score_out_equal_to_input_is_refused(home, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"image,query_text\n{home.gallery / home.searchable[0]},a dog\n")
    before = pairs.read_bytes()
    for out in (str(pairs), str(tmp_path / "." / "pairs.csv")):
        result = runner.invoke(app, ["score", str(pairs), "--out", out])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert "--out is the input file" in result.output and pairs.read_bytes() == before
    (tmp_path / "alias.csv").symlink_to(pairs)
    result = runner.invoke(app, ["score", str(pairs), "--out", str(tmp_path / "alias.csv")])
    assert result.exit_code == 2 and pairs.read_bytes() == before
