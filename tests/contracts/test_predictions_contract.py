"""The predictions contract: finite, in [0, 1], one per pair."""

import numpy as np
import pandas as pd
import pytest

from data_contracts import ContractError
from data_contracts.predictions import check_predictions


def frame(scores, pairs=None):
    pairs = pairs or [(f"i{k}.jpg", f"q{k}.jpg#0") for k in range(len(scores))]
    return pd.DataFrame({"image": [p[0] for p in pairs], "query_id": [p[1] for p in pairs], "score": scores})


def test_good_predictions_pass():
    assert check_predictions(frame([0.0, 0.5, 1.0]), 3, "test").success


@pytest.mark.parametrize(
    "scores, expected, message",
    [
        ([0.1, 1.2, 0.3], 3, "score in [0, 1]"),
        ([0.1, np.nan, 0.3], 3, "score present"),
        ([0.1, np.inf, 0.3], 3, "score finite"),
        ([0.1, 0.2, 0.3], 4, "one prediction for every pair"),
    ],
)
def test_bad_predictions_fail_with_reason(scores, expected, message):
    with pytest.raises(ContractError) as err:
        check_predictions(frame(scores), expected, "model x")
    assert message in str(err.value) and "model x" in str(err.value)


def test_duplicate_pair_fails():
    with pytest.raises(ContractError, match="one prediction per pair"):
        check_predictions(frame([0.1, 0.2], [("a.jpg", "b.jpg#0"), ("a.jpg", "b.jpg#0")]), 2, "dup")
