"""The real course dataset, when present: every contract passes and the counts are the known ones."""

import pytest

from tasks.ingest.dataset import ingest_dataset

pytestmark = pytest.mark.realdata


def test_practicum_dev_validates_with_known_counts(practicum_dir):
    dataset = ingest_dataset(practicum_dir)
    assert dataset.summary.rows == {"train": 4660, "crowd": 38500, "expert": 4660, "queries": 100, "test_images": 100}
    assert dataset.summary.images == {"train_images": 900, "test_images": 100}
    assert dataset.summary.dropped["crowd_unknown_text"] == 1318
