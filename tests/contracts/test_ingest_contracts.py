"""Each corrupted copy of the sample fails with its own clear message; raw inputs stay untouched."""

import hashlib
import shutil
from pathlib import Path

import pytest

from data_contracts import ContractError
from tasks.ingest.dataset import ingest_dataset
from tasks.ingest.tables import TableReadError


def digest_tree(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def edit_line(path: Path, line_no: int, edit) -> str:
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = edit(lines[line_no - 1])
    path.write_text("".join(lines))
    return lines[line_no - 1]


def test_sample_passes_every_contract(sample_dir):
    before = digest_tree(sample_dir)
    dataset = ingest_dataset(sample_dir)
    assert set(dataset.summary.contracts) == {
        "train_dataset",
        "crowd_annotations",
        "expert_annotations",
        "test_queries",
        "test_images",
        "image_references",
        "image_files",
    }
    assert dataset.summary.dropped["crowd_unknown_text"] == 5
    assert len(dataset.crowd) == dataset.summary.rows["crowd"] - 5
    assert digest_tree(sample_dir) == before, "ingestion must never modify raw inputs"


def test_wrong_separator(sample_copy):
    path = sample_copy / "train_dataset.csv"
    path.write_text(path.read_text().replace(",", ";"))
    with pytest.raises(TableReadError, match=r"train_dataset.csv: missing column.*semicolon-separated"):
        ingest_dataset(sample_copy)


def test_tsv_with_commas(sample_copy):
    path = sample_copy / "ExpertAnnotations.tsv"
    path.write_text(path.read_text().replace("\t", ","))
    with pytest.raises(
        TableReadError, match=r"ExpertAnnotations.tsv: expected 5 tab-separated columns.*comma-separated"
    ):
        ingest_dataset(sample_copy)


def test_missing_column(sample_copy):
    path = sample_copy / "test_queries.csv"
    lines = [line.rsplit("|", 1)[0] for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableReadError, match=r"test_queries.csv: missing column\(s\) \['image'\]"):
        ingest_dataset(sample_copy)


def test_rating_of_five_names_file_column_and_line(sample_copy):
    path = sample_copy / "ExpertAnnotations.tsv"
    edit_line(path, 4, lambda line: line.rsplit("\t", 1)[0] + "\t5\n")
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "ExpertAnnotations.tsv" in message
    assert "column 'expert_3'" in message
    assert "line 4: 5.0" in message
    assert err.value.result.failures[0].unexpected_count == 1


def test_crowd_share_out_of_range(sample_copy):
    path = sample_copy / "CrowdAnnotations.tsv"
    edit_line(path, 2, lambda line: "\t".join(line.split("\t")[:2] + ["1.5", "3", "0\n"]))
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    assert "CrowdAnnotations.tsv" in str(err.value)
    assert "column 'share_yes'" in str(err.value) and "line 2: 1.5" in str(err.value)


def test_duplicate_pair(sample_copy):
    path = sample_copy / "train_dataset.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[3]]))
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "train_dataset.csv" in message and "column 'image, query_id'" in message
    assert "line 4" in message and f"line {len(lines) + 1}" in message


def test_empty_text(sample_copy):
    path = sample_copy / "train_dataset.csv"
    edit_line(path, 5, lambda line: line.rsplit(",", 1)[0] + ",\n")
    with pytest.raises(ContractError, match=r"(?s)column 'query_text'.*no empty texts.*line 5"):
        ingest_dataset(sample_copy)


def test_bad_query_id(sample_copy):
    path = sample_copy / "train_dataset.csv"
    edit_line(path, 3, lambda line: line.replace(".jpg#", ".jpg-", 1) if line.count(".jpg#") else line)
    with pytest.raises(ContractError, match=r"(?s)column 'query_id'.*<image>.jpg#<n>.*line 3"):
        ingest_dataset(sample_copy)


def test_missing_image(sample_copy):
    victim = sorted((sample_copy / "test_images").iterdir())[0]
    victim.unlink()
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "image_references" in message and victim.name in message
    assert "test_images.csv" in message or "test_queries.csv" in message


def test_truncated_jpeg(sample_copy):
    victim = sorted((sample_copy / "train_images").iterdir())[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "image_files" in message and victim.name in message and "truncated" in message


def test_not_an_image(sample_copy):
    victim = sorted((sample_copy / "train_images").iterdir())[0]
    victim.write_text("this is not a jpeg")
    with pytest.raises(ContractError, match=victim.name):
        ingest_dataset(sample_copy)


def test_empty_file(sample_copy):
    (sample_copy / "CrowdAnnotations.tsv").write_text("")
    with pytest.raises(TableReadError, match=r"CrowdAnnotations.tsv: file is empty"):
        ingest_dataset(sample_copy)


def test_non_utf8_file(sample_copy):
    path = sample_copy / "train_dataset.csv"
    path.write_bytes(path.read_bytes().replace(b" .", " \xe9t\xe9 .".encode("latin-1"), 1))
    with pytest.raises(TableReadError, match=r"train_dataset.csv: not valid UTF-8: byte 0xe9 at line 2"):
        ingest_dataset(sample_copy)


def test_missing_image_folder(sample_copy):
    shutil.rmtree(sample_copy / "test_images")
    with pytest.raises(FileNotFoundError, match="test_images: image folder not found"):
        ingest_dataset(sample_copy)
