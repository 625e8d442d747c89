"""Contract on model predictions: one finite score in [0, 1] per (image, query_id) pair."""

from __future__ import annotations

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from data_contracts.runner import Contract, ContractResult, enforce


def _predictions(expected_rows: int):
    def build() -> list:
        checks = [
            # A NaN or infinite score would sort unpredictably and break the [0, 1] promise.
            gxe.ExpectColumnValuesToNotBeNull(column="score"),
            gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
            # Scores are relevance in [0, 1]: search and the API promise that range.
            gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0),
            # One prediction per pair, and one for every pair asked about.
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["image", "query_id"]),
            gxe.ExpectTableRowCountToEqual(value=expected_rows),
        ]
        whys = [
            "score present",
            "score finite",
            "score in [0, 1]",
            "one prediction per pair",
            "one prediction for every pair",
        ]
        for check, why in zip(checks, whys, strict=True):
            check.meta = {"why": why}
        return checks

    return build


def check_predictions(frame: pd.DataFrame, expected_rows: int, source: str) -> ContractResult:
    """Enforce the predictions contract on a frame with image, query_id and score columns."""
    checked = frame[["image", "query_id", "score"]].copy()
    checked["score"] = checked["score"].astype(float)
    checked["finite"] = np.isfinite(checked["score"].to_numpy()) | checked["score"].isna()
    checked.insert(0, "row", range(len(checked)))
    contract = Contract("predictions", _predictions(expected_rows), index=("row", "image", "query_id"))
    return enforce(checked, contract, source)
