"""The text screen on its evaluation set (tests/safety/screen_eval.tsv): the targets of issue 11 per family.

Recall >= 0.98 on every child family, false refusals <= 0.03 on every adult family. The same numbers
are in bench/results/screen.json (`python bench/screen.py`), with latency.
"""

from pathlib import Path

import pytest

from tasks.safety.screen_eval import (
    FALSE_REFUSAL_TARGET,
    RECALL_TARGET,
    errors,
    family_rates,
    read_eval_set,
    screen_eval_set,
)

EVAL_SET = Path(__file__).with_name("screen_eval.tsv")
CHILD_FAMILIES = ["plain", "misspelling", "leet", "script", "spacing", "language", "idiom", "age", "kin"]
ADULT_FAMILIES = ["plain", "idiom", "animal", "product", "name", "age-of-thing", "contains"]


@pytest.fixture(scope="module")
def screened():
    return screen_eval_set(read_eval_set(EVAL_SET))


@pytest.fixture(scope="module")
def rates(screened):
    return family_rates(screened).set_index(["label", "family"])


def test_eval_set_is_large_and_written_in_families():
    frame = read_eval_set(EVAL_SET)
    counts = frame["label"].value_counts()
    assert counts["child"] >= 400 and counts["adult"] >= 400
    assert sorted(frame.loc[frame["label"] == "child", "family"].unique()) == sorted(CHILD_FAMILIES)
    assert sorted(frame.loc[frame["label"] == "adult", "family"].unique()) == sorted(ADULT_FAMILIES)
    assert frame.groupby(["label", "family"]).size().min() >= 40
    assert not frame["text"].duplicated().any()


@pytest.mark.parametrize("family", CHILD_FAMILIES)
def test_recall_per_child_family(screened, rates, family):
    row = rates.loc[("child", family)]
    missed = errors(screened.query("label == 'child' and family == @family"))["text"].tolist()
    assert row["rate"] >= RECALL_TARGET, missed


@pytest.mark.parametrize("family", ADULT_FAMILIES)
def test_false_refusals_per_adult_family(screened, rates, family):
    row = rates.loc[("adult", family)]
    refused = errors(screened.query("label == 'adult' and family == @family"))[["text", "matches"]].values.tolist()
    assert row["rate"] <= FALSE_REFUSAL_TARGET, refused
