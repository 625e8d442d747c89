"""Readers on three-row files: formats, types, line numbers and the errors for unreadable tables."""

from pathlib import Path

import pandas as pd
import pytest

from tasks.ingest.tables import CROWD, EXPERT, QUERIES, TEST_IMAGES, TRAIN, TableReadError, caption_image, read_table


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_train_table_keeps_text_and_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "train_dataset.csv",
        'image,query_id,query_text\na.jpg,b.jpg#0,"A dog, running ."\nc.jpg,a.jpg#2,Two cats .\n',
    )
    frame = read_table(TRAIN, path)
    assert list(frame.columns) == ["line", "image", "query_id", "query_text"]
    assert frame["query_text"].tolist() == ["A dog, running .", "Two cats ."]
    assert frame["line"].tolist() == [2, 3]


def test_crowd_table_is_headerless_and_numeric(tmp_path):
    path = write(tmp_path, "CrowdAnnotations.tsv", "a.jpg\tb.jpg#0\t0.333333\t1\t2\na.jpg\ta.jpg#1\t1.0\t3\t0\n")
    frame = read_table(CROWD, path)
    assert frame["share_yes"].tolist() == pytest.approx([1 / 3, 1.0], abs=1e-5)
    assert frame["count_no"].tolist() == [2.0, 0.0]
    assert frame["line"].tolist() == [1, 2]


def test_non_numeric_rating_becomes_missing_for_the_contract_to_report(tmp_path):
    path = write(tmp_path, "ExpertAnnotations.tsv", "a.jpg\tb.jpg#0\t1\tx\t2\n")
    frame = read_table(EXPERT, path)
    assert pd.isna(frame.loc[0, "expert_2"])


def test_queries_drop_unnamed_index_and_undouble_quotes(tmp_path):
    content = '|query_id|query_text|image\n0|a.jpg#2|"A man says ""hi"" ."|a.jpg\n1|b.jpg#0|Dogs .|b.jpg\n'
    frame = read_table(QUERIES, write(tmp_path, "test_queries.csv", content))
    assert list(frame.columns) == ["line", "query_id", "query_text", "image"]
    assert frame.loc[0, "query_text"] == 'A man says "hi" .'


def test_test_images_table(tmp_path):
    frame = read_table(TEST_IMAGES, write(tmp_path, "test_images.csv", "image\na.jpg\nb.jpg\n"))
    assert frame["image"].tolist() == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    "fmt, content, message",
    [
        (TRAIN, "", "file is empty"),
        (TRAIN, "\n\n", "file is empty"),
        (TRAIN, "image,query_id,query_text\n", "no data rows"),
        (TRAIN, "image;query_id;query_text\na.jpg;b.jpg#0;x\n", "looks semicolon-separated"),
        (TRAIN, "image,query_id\na.jpg,b.jpg#0\n", "missing column(s) ['query_text']"),
        (CROWD, "a.jpg,b.jpg#0,1.0,3,0\n", "expected 5 tab-separated columns"),
        (CROWD, "a.jpg\tb.jpg#0\t1.0\t3\n", "found 4"),
        (QUERIES, "query_id,query_text,image\na.jpg#0,x,a.jpg\n", "looks comma-separated"),
    ],
)
def test_unreadable_tables_name_the_file_and_the_problem(tmp_path, fmt, content, message):
    path = write(tmp_path, fmt.filename, content)
    with pytest.raises(TableReadError) as err:
        read_table(fmt, path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_non_utf8_file_names_the_line(tmp_path):
    path = write(
        tmp_path, "train_dataset.csv", "image,query_id,query_text\na.jpg,b.jpg#0,caf\xe9 .\n".encode("latin-1")
    )
    with pytest.raises(TableReadError, match=r"not valid UTF-8: byte 0xe9 at line 2"):
        read_table(TRAIN, path)


def test_missing_file(tmp_path):
    with pytest.raises(TableReadError, match="missing file"):
        read_table(TRAIN, tmp_path / "train_dataset.csv")


def test_caption_image_parses_query_id():
    assert caption_image(pd.Series(["a_b.jpg#3", "x.jpg#0"])).tolist() == ["a_b.jpg", "x.jpg"]
