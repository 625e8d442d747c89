"""The training-pairs contracts: a good aggregated frame passes, each kind of breakage is named."""

import numpy as np
import pandas as pd
import pytest

from data_contracts import ContractError, enforce
from data_contracts.ratings import (
    SAFE_TRAINING_PAIRS_CONTRACT,
    TRAINING_PAIRS_CONTRACT,
    prepare_safe_training_pairs,
    prepare_training_pairs,
)


def _good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": ["x.jpg", "x.jpg", "y.jpg"],
            "query_id": ["a.jpg#0", "b.jpg#0", "a.jpg#0"],
            "query_text": ["a dog", "a cat", "a dog"],
            "target": [1.0, 0.0, 0.5],
            "expert_score": [1.0, np.nan, 0.5],
            "crowd_share": [np.nan, 0.0, 0.3],
            "source": ["expert", "crowd", "both"],
        }
    )


def test_good_frame_passes():
    assert enforce(prepare_training_pairs(_good()), TRAINING_PAIRS_CONTRACT, "test").success


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("target", 1.5, "target in \\[0, 1\\]"),
        ("target", np.nan, "every pair has a target"),
        ("query_text", "", "caption texts of 1 to 1000 characters"),
        ("query_text", "x" * 1001, "caption texts of 1 to 1000 characters"),
        ("query_text", None, "every pair has its caption text"),
        ("source", "guess", "source is expert, crowd or both"),
        ("expert_score", 3.0, "expert_score in \\[0, 1\\]"),
    ],
)
def test_bad_frame_fails_with_named_check(column, value, message):
    bad = _good()
    bad[column] = bad[column].astype(object)
    bad.loc[1, column] = value
    with pytest.raises(ContractError, match=message) as info:
        enforce(prepare_training_pairs(bad), TRAINING_PAIRS_CONTRACT, "aggregated ratings")
    assert "training_pairs" in str(info.value) and "row 2" in str(info.value)


def test_duplicate_pairs_fail():
    bad = pd.concat([_good(), _good().iloc[[0]]], ignore_index=True)
    with pytest.raises(ContractError, match="one row per \\(image, query_id\\)"):
        enforce(prepare_training_pairs(bad), TRAINING_PAIRS_CONTRACT, "aggregated ratings")


def test_safe_contract_refuses_a_flagged_pair():
    frame = prepare_safe_training_pairs(_good(), flagged_query_ids={"b.jpg#0"}, flagged_images=set())
    with pytest.raises(ContractError, match="no flagged pair remains"):
        enforce(frame, SAFE_TRAINING_PAIRS_CONTRACT, "safe pairs")
    clean = prepare_safe_training_pairs(_good(), flagged_query_ids=set(), flagged_images={"z.jpg"})
    assert enforce(clean, SAFE_TRAINING_PAIRS_CONTRACT, "safe pairs").success
