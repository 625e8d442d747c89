"""Contracts for the ratings stage output: the aggregated training pairs and the safety-filtered set."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from data_contracts.runner import Contract, why
from tasks.ingest.tables import MAX_TEXT_CHARS

SOURCES = ["expert", "crowd", "both"]


def _training_pairs() -> list:
    return [
        # Downstream models regress on target with a sigmoid head: anything outside [0, 1] is a bug upstream.
        why(gxe.ExpectColumnValuesToNotBeNull(column="target"), "every pair has a target"),
        why(gxe.ExpectColumnValuesToBeBetween(column="target", min_value=0, max_value=1), "target in [0, 1]"),
        # One target per pair: a duplicate would double-weight it and leak across the image split.
        why(gxe.ExpectCompoundColumnsToBeUnique(column_list=["image", "query_id"]), "one row per (image, query_id)"),
        # A pair without text cannot be embedded or screened for child content.
        why(gxe.ExpectColumnValuesToNotBeNull(column="query_text"), "every pair has its caption text"),
        why(
            gxe.ExpectColumnValuesToBeBetween(column="text_length", min_value=1, max_value=MAX_TEXT_CHARS),
            f"caption texts of 1 to {MAX_TEXT_CHARS} characters",
        ),
        # The provenance column is what the EDA and the model card report on.
        why(gxe.ExpectColumnValuesToBeInSet(column="source", value_set=SOURCES), "source is expert, crowd or both"),
        # Scores that exist must be on the [0, 1] scale too, or the blend was done on raw 1..4 scores.
        why(
            gxe.ExpectColumnValuesToBeBetween(column="expert_score", min_value=0, max_value=1),
            "expert_score in [0, 1] where present",
        ),
        why(
            gxe.ExpectColumnValuesToBeBetween(column="crowd_share", min_value=0, max_value=1),
            "crowd_share in [0, 1] where present",
        ),
    ]


def prepare_training_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the contract checks and a `row` (1-based position) to locate bad rows.

    A row of this derived table has no line in any file, so it is called a row, never a line."""
    out = frame.copy()
    out["text_length"] = out["query_text"].fillna("").astype(str).str.strip().str.len()
    if "row" not in out:
        out.insert(0, "row", range(1, len(out) + 1))
    return out


def prepare_safe_training_pairs(
    frame: pd.DataFrame, flagged_query_ids: set[str], flagged_images: set[str]
) -> pd.DataFrame:
    """As `prepare_training_pairs`, plus `child_flagged` recomputed from the flags (not from the filter's mask)."""
    out = prepare_training_pairs(frame)
    out["child_flagged"] = out["query_id"].isin(flagged_query_ids) | out["image"].isin(flagged_images)
    return out


def _safe_training_pairs() -> list:
    return _training_pairs() + [
        # The legal requirement: no pair that mentions or shows a child may reach training.
        why(gxe.ExpectColumnValuesToBeInSet(column="child_flagged", value_set=[False]), "no flagged pair remains"),
    ]


TRAINING_PAIRS_CONTRACT = Contract("training_pairs", _training_pairs, index=("row", "image", "query_id"))
SAFE_TRAINING_PAIRS_CONTRACT = Contract("safe_training_pairs", _safe_training_pairs, index=("row", "image", "query_id"))
