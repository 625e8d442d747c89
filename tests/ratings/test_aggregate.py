"""Rating aggregation maths on three-row frames."""

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from tasks.ratings.aggregate import RatingParams, aggregate_ratings, blend_targets, expert_scores


def _expert(rows):
    return pd.DataFrame(rows, columns=["image", "query_id", "expert_1", "expert_2", "expert_3"])


def _crowd(rows):
    return pd.DataFrame(rows, columns=["image", "query_id", "share_yes", "count_yes", "count_no"])


TEXTS = pd.DataFrame({"query_id": ["a.jpg#0", "b.jpg#0", "c.jpg#0"], "query_text": ["a dog", "a cat", "a car"]})


def test_expert_mean_maps_1_to_0_and_4_to_1():
    frame = _expert([("x.jpg", "a.jpg#0", 1, 1, 1), ("x.jpg", "b.jpg#0", 4, 4, 4), ("x.jpg", "c.jpg#0", 1, 2, 4)])
    assert expert_scores(frame, "mean").tolist() == pytest.approx([0.0, 1.0, (7 / 3 - 1) / 3])


def test_expert_majority_is_the_shared_score_or_the_middle_one():
    frame = _expert([("x.jpg", "a.jpg#0", 1, 1, 4), ("x.jpg", "b.jpg#0", 4, 2, 4), ("x.jpg", "c.jpg#0", 1, 2, 4)])
    assert expert_scores(frame, "majority").tolist() == pytest.approx([0.0, 1.0, 1 / 3])


def test_unknown_expert_method_is_refused():
    with pytest.raises(ValueError, match="unknown expert_method"):
        expert_scores(_expert([("x.jpg", "a.jpg#0", 1, 1, 1)]), "vote")


def test_blend_uses_weights_only_where_both_exist():
    expert = pd.Series([1.0, float("nan"), 0.0])
    crowd = pd.Series([0.0, 0.5, float("nan")])
    assert blend_targets(expert, crowd, 3.0, 1.0).tolist() == pytest.approx([0.75, 0.5, 0.0])


def test_union_with_expert_priority_and_sources():
    expert = _expert([("x.jpg", "a.jpg#0", 4, 4, 4), ("x.jpg", "b.jpg#0", 1, 1, 1)])
    crowd = _crowd([("x.jpg", "a.jpg#0", 0.0, 0, 3), ("y.jpg", "c.jpg#0", 0.5, 1, 1)])
    result = aggregate_ratings(expert, crowd, TEXTS)
    pairs = result.pairs.set_index("query_id")
    assert pairs.loc["a.jpg#0", "target"] == 1.0  # expert wins over the crowd's 0
    assert pairs.loc["a.jpg#0", "source"] == "both"
    assert pairs.loc["b.jpg#0", "source"] == "expert" and math.isnan(pairs.loc["b.jpg#0", "crowd_share"])
    assert pairs.loc["c.jpg#0", "target"] == 0.5 and math.isnan(pairs.loc["c.jpg#0", "expert_score"])
    assert pairs.loc["c.jpg#0", "query_text"] == "a car"
    counts = result.counts
    assert (counts.expert_pairs, counts.crowd_pairs, counts.both, counts.expert_only, counts.crowd_only) == (
        2,
        2,
        1,
        1,
        1,
    )
    assert counts.pairs == 3 and counts.unknown_text_dropped == 0


def test_blend_weights_from_params():
    expert = _expert([("x.jpg", "a.jpg#0", 4, 4, 4)])
    crowd = _crowd([("x.jpg", "a.jpg#0", 0.0, 0, 3)])
    result = aggregate_ratings(expert, crowd, TEXTS, RatingParams(expert_weight=1, crowd_weight=1))
    assert result.pairs["target"].tolist() == [0.5]


def test_pairs_with_unknown_text_are_dropped_and_counted():
    expert = _expert([("x.jpg", "zzz.jpg#3", 2, 2, 2), ("x.jpg", "a.jpg#0", 2, 2, 2)])
    crowd = _crowd([("x.jpg", "b.jpg#9", 1.0, 3, 0)])
    result = aggregate_ratings(expert, crowd, TEXTS)
    assert result.pairs["query_id"].tolist() == ["a.jpg#0"]
    assert result.counts.unknown_text_dropped == 2


def test_output_columns():
    result = aggregate_ratings(_expert([("x.jpg", "a.jpg#0", 2, 3, 4)]), _crowd([]), TEXTS)
    assert list(result.pairs.columns) == [
        "image",
        "query_id",
        "query_text",
        "target",
        "expert_score",
        "crowd_share",
        "source",
    ]


def test_params_refuse_zero_weights_and_unknown_fields():
    with pytest.raises(ValidationError, match="must be > 0"):
        RatingParams(expert_weight=0, crowd_weight=0)
    with pytest.raises(ValidationError):
        RatingParams(expert_weight=-1)
    with pytest.raises(ValidationError):
        RatingParams(method="mean")
