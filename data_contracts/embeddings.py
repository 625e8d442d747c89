"""Contract for an embedding stage output: one finite, non-zero vector of the encoder's dimension per input."""

from __future__ import annotations

from collections.abc import Sequence

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from data_contracts.runner import Contract, ContractResult, enforce, why


def embeddings_frame(keys: Sequence[str], matrix: np.ndarray) -> pd.DataFrame:
    """One row per vector with the facts the contract checks: its length, finiteness and norm."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        matrix = matrix.reshape(len(keys), -1) if len(keys) else np.zeros((0, 0), dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1) if matrix.size else np.ones(len(matrix), dtype=bool)
    norms = np.linalg.norm(np.where(np.isfinite(matrix), matrix, 0.0), axis=1) if matrix.size else np.zeros(len(matrix))
    return pd.DataFrame(
        {
            "row": np.arange(len(matrix)),
            "key": list(keys)[: len(matrix)] + [""] * max(0, len(matrix) - len(keys)),
            "dim": np.full(len(matrix), matrix.shape[1] if matrix.ndim == 2 else 0),
            "finite": finite,
            "norm": norms.astype(float),
        }
    )


def embedding_contract(name: str, dim: int, rows: int) -> Contract:
    """The contract for `rows` vectors of length `dim` (both known before the stage runs)."""

    def build() -> list:
        return [
            # Later stages index vectors by input position; a missing or extra row shifts every pair after it.
            why(gxe.ExpectTableRowCountToEqual(value=rows), f"one vector per input ({rows})"),
            # A model or cache of another dimension would break the training matrix (or silently mix encoders).
            why(gxe.ExpectColumnValuesToBeBetween(column="dim", min_value=dim, max_value=dim), f"dimension {dim}"),
            # NaN or inf poisons every distance and every gradient downstream.
            why(gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]), "all values finite"),
            # An all-zero vector means an input that was never really embedded (blank image, empty text).
            why(
                gxe.ExpectColumnValuesToBeBetween(column="norm", min_value=0, strict_min=True),
                "vector is not all zeros",
            ),
        ]

    return Contract(f"embeddings_{name}", build, index=("row", "key"))


def check_embeddings(
    name: str, keys: Sequence[str], matrix: np.ndarray, dim: int, rows: int, source: str
) -> ContractResult:
    """Raise ContractError unless `matrix` holds `rows` finite, non-zero vectors of length `dim`."""
    return enforce(embeddings_frame(keys, matrix), embedding_contract(name, dim, rows), source)
