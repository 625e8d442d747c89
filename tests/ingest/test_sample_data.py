"""The embedded sample dataset: the five-table format, determinism, and ratings that follow content."""

import hashlib

import pandas as pd
import pytest

from tasks.ingest.sample import generate_sample
from tasks.ingest.tables import CROWD, EXPERT, QUERIES, TEST_IMAGES, TRAIN, read_table


def tables_digest(root):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*.*sv"))}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = generate_sample(tmp_path / "a", seed=3, n_train=20, n_test=4)
    b = generate_sample(tmp_path / "b", seed=3, n_train=20, n_test=4)
    c = generate_sample(tmp_path / "c", seed=4, n_train=20, n_test=4)
    assert tables_digest(a.out_dir) == tables_digest(b.out_dir)
    assert tables_digest(a.out_dir) != tables_digest(c.out_dir)
    images_a = sorted(p.read_bytes() for p in (a.out_dir / "train_images").iterdir())
    images_b = sorted(p.read_bytes() for p in (b.out_dir / "train_images").iterdir())
    assert images_a == images_b


def test_exact_five_table_format(sample_dir):
    assert (sample_dir / "test_queries.csv").read_text().splitlines()[0] == "|query_id|query_text|image"
    assert (sample_dir / "test_images.csv").read_text().splitlines()[0] == "image"
    assert (sample_dir / "train_dataset.csv").read_text().splitlines()[0] == "image,query_id,query_text"
    first_crowd = (sample_dir / "CrowdAnnotations.tsv").read_text().splitlines()[0].split("\t")
    assert len(first_crowd) == 5 and first_crowd[1].split("#")[0].endswith(".jpg")
    assert '""' in (sample_dir / "test_queries.csv").read_text(), "doubled quotes occur, as in the real file"
    for fmt in (TRAIN, CROWD, EXPERT, QUERIES, TEST_IMAGES):
        assert len(read_table(fmt, sample_dir / fmt.filename)) > 0
    jpgs = list((sample_dir / "train_images").glob("*.jpg"))
    assert len(jpgs) == 60 and jpgs[0].read_bytes()[:2] == b"\xff\xd8"


def test_ratings_follow_caption_fit(sample_dir):
    expert = read_table(EXPERT, sample_dir / EXPERT.filename)
    own = expert["query_id"].str.split("#").str[0] == expert["image"]
    mean = expert[["expert_1", "expert_2", "expert_3"]].mean(axis=1)
    assert own.any() and (~own).any()
    assert mean[own].mean() > mean[~own].mean() + 1.0
    crowd = read_table(CROWD, sample_dir / CROWD.filename)
    assert crowd["share_yes"].between(0, 1).all()


def test_some_images_show_children(sample_dir):
    texts = pd.read_csv(sample_dir / "train_dataset.csv")["query_text"].str.lower()
    assert texts.str.contains(r"\b(?:child|children|boy|boys|kid|kids|toddler|toddlers|little girl)\b").mean() > 0.05


def test_too_small_a_sample_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 10 train"):
        generate_sample(tmp_path, n_train=3)
