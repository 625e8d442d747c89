"""The embedding contract: wrong dimension, NaN, missing rows and all-zero vectors are refused with the rows named."""

import numpy as np
import pytest

from data_contracts import ContractError
from data_contracts.embeddings import check_embeddings


def _vectors(rows=4, dim=8):
    return np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)


KEYS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_good_embeddings_pass():
    result = check_embeddings("images", KEYS, _vectors(), dim=8, rows=4, source="test")
    assert result.success


def test_wrong_dimension_fails():
    with pytest.raises(ContractError, match="dimension 8") as err:
        check_embeddings("images", KEYS, _vectors(dim=6), dim=8, rows=4, source="test")
    assert "embeddings_images" in str(err.value)


def test_nan_fails_and_names_the_row():
    vectors = _vectors()
    vectors[2, 5] = np.nan
    with pytest.raises(ContractError, match="all values finite") as err:
        check_embeddings("images", KEYS, vectors, dim=8, rows=4, source="test")
    assert "c.jpg" in str(err.value)


def test_missing_rows_fail():
    with pytest.raises(ContractError, match="one vector per input"):
        check_embeddings("images", KEYS[:3], _vectors(rows=3), dim=8, rows=4, source="test")


def test_all_zero_vector_fails():
    vectors = _vectors()
    vectors[0] = 0
    with pytest.raises(ContractError, match="not all zeros"):
        check_embeddings("images", KEYS, vectors, dim=8, rows=4, source="test")
