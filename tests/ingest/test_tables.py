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


# Physical line numbers: the line an editor shows, whatever blank lines or multi-line quoted fields come before.


def test_blank_lines_keep_physical_line_numbers(tmp_path):
    rows = [f"a.jpg\tb.jpg#{i}\t1\t2\t3" for i in range(10)]
    content = "\n".join(rows[:3]) + "\n\n\n" + "\n".join(rows[3:]) + "\n"  # two blank lines after line 3
    frame = read_table(EXPERT, write(tmp_path, "ExpertAnnotations.tsv", content))
    assert frame["line"].tolist() == [1, 2, 3, 6, 7, 8, 9, 10, 11, 12]
    assert frame.loc[frame["query_id"] == "b.jpg#9", "line"].item() == 12  # was reported as line 10


def test_whitespace_only_lines_are_blank(tmp_path):
    content = "image\n  \na.jpg\n\t\nb.jpg\n"
    frame = read_table(TEST_IMAGES, write(tmp_path, "test_images.csv", content))
    assert frame["image"].tolist() == ["a.jpg", "b.jpg"] and frame["line"].tolist() == [3, 5]


def test_quoted_caption_spanning_lines_does_not_shift_later_lines(tmp_path):
    content = 'image,query_id,query_text\na.jpg,a.jpg#0,"A dog\nrunning\nfast ."\nb.jpg,b.jpg#0,Two cats .\n'
    frame = read_table(TRAIN, write(tmp_path, "train_dataset.csv", content))
    assert frame["line"].tolist() == [2, 5]
    assert frame.loc[0, "query_text"] == "A dog\nrunning\nfast ."


def test_crlf_and_bom_keep_line_numbers(tmp_path):
    content = "\ufeffimage,query_id,query_text\r\na.jpg,a.jpg#0,x\r\n\r\nb.jpg,b.jpg#0,y\r\n"
    frame = read_table(TRAIN, write(tmp_path, "train_dataset.csv", content))
    assert frame["line"].tolist() == [2, 4] and frame["query_text"].tolist() == ["x", "y"]


def test_unterminated_quote_names_its_physical_line(tmp_path):
    lines = [
        "image,query_id,query_text",
        "a.jpg,a.jpg#0,x",
        "",
        "b.jpg,b.jpg#0,y",
        'c.jpg,c.jpg#0,"never closed',
        "d,e,f",
    ]
    path = write(tmp_path, "train_dataset.csv", "\n".join(lines) + "\n")
    with pytest.raises(TableReadError) as err:
        read_table(TRAIN, path)
    message = str(err.value)
    assert message.startswith(f"{path}: line 5: a quoted field opened on this line is never closed")
    assert "row 4" not in message and "\n" not in message


def test_text_after_closing_quote_names_its_line(tmp_path):
    path = write(tmp_path, "train_dataset.csv", 'image,query_id,query_text\n\na.jpg,a.jpg#0,"x" y\n')
    with pytest.raises(TableReadError, match=r"train_dataset.csv: line 3: text after a closing quote"):
        read_table(TRAIN, path)


def test_too_many_fields_names_the_line_and_a_quote_span(tmp_path):
    content = 'image,query_id,query_text\na.jpg,a.jpg#0,"x\n\ny",extra\n'
    path = write(tmp_path, "train_dataset.csv", content)
    with pytest.raises(
        TableReadError, match=r"line 2: expected 3 comma-separated fields, found 4 \(a quoted field runs"
    ):
        read_table(TRAIN, path)
    rows = "a.jpg\tb.jpg#0\t1\t2\t3\n\na.jpg\tb.jpg#1\t1\t2\t3\t4\n"
    with pytest.raises(
        TableReadError, match=r"ExpertAnnotations.tsv: line 3: expected 5 tab-separated fields, found 6$"
    ):
        read_table(EXPERT, write(tmp_path, "ExpertAnnotations.tsv", rows))


def test_trailing_separators_and_short_rows(tmp_path):
    frame = read_table(
        EXPERT, write(tmp_path, "ExpertAnnotations.tsv", "a.jpg\tb.jpg#0\t1\t2\t3\t\na.jpg\tb.jpg#1\t1\n")
    )
    assert frame["expert_1"].tolist() == [1.0, 1.0]
    assert pd.isna(frame.loc[1, "expert_3"])  # the contract reports it with its line


def test_repeated_header_column(tmp_path):
    with pytest.raises(TableReadError, match=r"line 1: column\(s\) \['image'\] appear more than once"):
        read_table(TRAIN, write(tmp_path, "train_dataset.csv", "image,query_id,query_text,image\na,b,c,d\n"))
