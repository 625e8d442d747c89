"""The child-content filter on the real course dataset: how many pairs it removes."""

import pytest

from tasks.ingest.dataset import ingest_dataset
from tasks.ratings.aggregate import aggregate_ratings
from tasks.safety.text_screen import apply_child_safety

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def outcome(practicum_dir):
    dataset = ingest_dataset(practicum_dir)
    ratings = aggregate_ratings(dataset.expert, dataset.crowd, dataset.texts())
    return ratings, apply_child_safety(ratings.pairs, dataset.texts())


def test_ratings_cover_expert_and_crowd_pairs(outcome):
    ratings, _ = outcome
    assert ratings.counts.expert_pairs == 4660 and ratings.counts.unknown_text_dropped == 0
    assert ratings.counts.pairs == ratings.counts.expert_pairs + ratings.counts.crowd_only


def test_flagged_share_of_pairs(outcome):
    _, safety = outcome
    summary = safety.summary
    # About a quarter to a third of the captions are about children; a pair leaves when its text
    # or its image is flagged, and the two are nearly independent, so the union is larger.
    assert 0.2 <= summary.pairs_flagged_by_text / summary.pairs_before <= 0.35
    assert 0.2 <= summary.pairs_flagged_by_image / summary.pairs_before <= 0.35
    assert 0.3 <= summary.flagged_pair_share <= 0.5
    assert 0.25 <= summary.texts_flagged / summary.texts_screened <= 0.35
