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


# Physical line numbers through the whole path: reader, contract, message.


def test_bad_value_after_blank_lines_names_its_physical_line(sample_copy):
    path = sample_copy / "ExpertAnnotations.tsv"
    lines = path.read_text().splitlines(keepends=True)
    lines[2:2] = ["\n", "\n"]  # two blank lines after line 2: the old reader counted only data rows
    lines[11] = lines[11].rsplit("\t", 1)[0] + "\t7\n"  # physical line 12
    path.write_text("".join(lines))
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    assert "line 12: 7.0" in str(err.value) and "line 10:" not in str(err.value)


def test_multiline_caption_does_not_shift_later_lines(sample_copy):
    path = sample_copy / "train_dataset.csv"
    lines = path.read_text().splitlines(keepends=True)
    image, query_id, _ = lines[2].rstrip("\n").split(",", 2)
    lines[2] = f'{image},{query_id},"A dog\nruns on\nthe grass ."\n'  # line 3 now spans lines 3 to 5
    lines[6] = lines[6].rsplit(",", 1)[0] + ",\n"  # was line 7, now physical line 9: an empty text
    path.write_text("".join(lines))
    with pytest.raises(ContractError, match=r"(?s)no empty texts.*line 9\b"):
        ingest_dataset(sample_copy)


def test_unterminated_quote_names_its_line(sample_copy):
    path = sample_copy / "train_dataset.csv"
    edit_line(path, 5, lambda line: line.rsplit(",", 1)[0] + ',"an unclosed caption\n')
    with pytest.raises(TableReadError, match=r"train_dataset.csv: line 5: a quoted field opened on this line"):
        ingest_dataset(sample_copy)


# Questionable inputs that used to be accepted silently.


def test_long_caption_fails_its_contract_with_a_short_message(sample_copy):
    path = sample_copy / "test_queries.csv"
    long_text = "a very long caption " * 100  # 2,000 characters
    edit_line(path, 4, lambda line: "|".join([*line.split("|")[:2], long_text, line.split("|")[3]]))
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "test_queries.csv" in message and "texts of at most 1000 characters" in message and "line 4" in message
    assert len(message) < 1000 and "characters)" in message


def test_five_megabyte_caption_is_refused_before_the_contracts(sample_copy):
    path = sample_copy / "train_dataset.csv"
    edit_line(path, 4, lambda line: line.rsplit(",", 1)[0] + "," + "x" * 5_000_000 + "\n")
    with pytest.raises(TableReadError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "train_dataset.csv: line 4: a field of more than 131,072 characters" in message and len(message) < 300


def test_crowd_row_without_raters_fails(sample_copy):
    path = sample_copy / "CrowdAnnotations.tsv"
    edit_line(path, 3, lambda line: "\t".join(line.split("\t")[:2] + ["0", "0", "0\n"]))
    with pytest.raises(ContractError, match=r"(?s)CrowdAnnotations.tsv.*at least one rater.*line 3"):
        ingest_dataset(sample_copy)


def test_markup_in_an_image_name_fails_the_name_check(sample_copy):
    path = sample_copy / "train_dataset.csv"
    edit_line(path, 2, lambda line: '<b>x</b>.jpg,"<b>x</b>.jpg#0",a dog\n')
    with pytest.raises(ContractError, match=r"(?s)column 'image'.*markup.*line 2"):
        ingest_dataset(sample_copy)


def test_symlink_out_of_the_dataset_is_refused_unopened(sample_copy, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(sorted((sample_copy / "train_images").iterdir())[0], outside / "private.jpg")
    (sample_copy / "train_images" / "linked.jpg").symlink_to(outside / "private.jpg")
    before = digest_tree(sample_copy)
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "image_files" in message and "column 'inside_dataset'" in message and "linked.jpg" in message
    assert f"symbolic link to {outside / 'private.jpg'}, outside the dataset folder" in message
    assert "column 'decodes'" not in message, "a link out is reported once, not also as undecodable"
    assert digest_tree(sample_copy) == before


def test_symlinks_inside_the_dataset_are_fine(sample_copy, tmp_path):
    source = sorted((sample_copy / "train_images").iterdir())[0]
    (sample_copy / "test_images" / "alias.jpg").symlink_to(Path("..") / "train_images" / source.name)
    # The image folder itself may be a link (a shared image store): its own files are inside it.
    store = tmp_path / "store"
    shutil.move(sample_copy / "train_images", store)
    (sample_copy / "train_images").symlink_to(store)
    dataset = ingest_dataset(sample_copy)
    assert dataset.summary.images == {"train_images": len(list(store.iterdir())), "test_images": 13}


@pytest.mark.parametrize(("width", "height", "shown"), [(10_000, 10_000, "100.0"), (8_000, 7_000, "56.0")])
def test_huge_image_is_refused_from_its_header(sample_copy, png_header, width, height, shown):
    png_header(sample_copy / "train_images" / "huge.png", width, height)
    with pytest.raises(ContractError) as err:
        ingest_dataset(sample_copy)
    message = str(err.value)
    assert "column 'megapixels'" in message and "images of at most 50 megapixels" in message
    assert f"huge.png: {width}x{height} = {shown} megapixels, over the 50 MP bound (not decoded)" in message
    assert "column 'decodes'" not in message


def test_image_over_twice_the_bound_is_refused_by_pil_too(tmp_path, png_header):
    from tasks.images import ImageTooLargeError, open_image

    with pytest.raises(ImageTooLargeError, match=r"big.png: 400.0 megapixels, over the 50 MP bound"):
        with open_image(png_header(tmp_path / "big.png", 20_000, 20_000)):
            pass
