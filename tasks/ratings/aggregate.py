"""Rating aggregation: expert and crowd judgements to one relevance target in [0, 1] per (image, query_id).

Experts answer on a 1..4 scale and are the better judges, so by default their score decides where
both exist; the crowd's share of "yes" fills the pairs no expert rated. Both weights are parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

EXPERT_COLUMNS = ("expert_1", "expert_2", "expert_3")
PAIR = ["image", "query_id"]
OUTPUT_COLUMNS = ["image", "query_id", "query_text", "target", "expert_score", "crowd_share", "source"]


class RatingParams(BaseModel):
    """How ratings become targets. Defaults: mean expert score, pure expert priority where both exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expert_method: Literal["mean", "majority"] = Field(
        default="mean",
        description="'mean': mean of the three scores mapped by (s - 1) / 3; 'majority': the score two "
        "experts agree on (the median, which is the middle score when all three differ), mapped the same way",
    )
    expert_weight: float = Field(default=1.0, ge=0, description="Weight of the expert score where a pair has both")
    crowd_weight: float = Field(
        default=0.0, ge=0, description="Weight of the crowd share where a pair has both (0: expert priority)"
    )

    @model_validator(mode="after")
    def _some_weight(self) -> RatingParams:
        if self.expert_weight + self.crowd_weight <= 0:
            raise ValueError("expert_weight + crowd_weight must be > 0")
        return self


@dataclass(frozen=True)
class RatingCounts:
    expert_pairs: int
    crowd_pairs: int
    both: int
    expert_only: int
    crowd_only: int
    unknown_text_dropped: int
    pairs: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AggregatedRatings:
    pairs: pd.DataFrame
    counts: RatingCounts


def expert_scores(expert: pd.DataFrame, method: str = "mean") -> pd.Series:
    """One score in [0, 1] per expert row: 1 -> 0, 4 -> 1.

    The median of three scores is the majority score whenever two agree, and the middle score
    when all three differ, so 'majority' never needs a tie-break rule.
    """
    scores = expert[list(EXPERT_COLUMNS)].astype(float)
    if method == "mean":
        raw = scores.mean(axis=1)
    elif method == "majority":
        raw = scores.median(axis=1)
    else:
        raise ValueError(f"unknown expert_method {method!r}: use 'mean' or 'majority'")
    return (raw - 1.0) / 3.0


def blend_targets(
    expert_score: pd.Series, crowd_share: pd.Series, expert_weight: float, crowd_weight: float
) -> pd.Series:
    """Weighted mean where both exist, otherwise whichever exists."""
    both = expert_score.notna() & crowd_share.notna()
    blended = (expert_weight * expert_score + crowd_weight * crowd_share) / (expert_weight + crowd_weight)
    target = expert_score.where(expert_score.notna(), crowd_share)
    return target.where(~both, blended)


def aggregate_ratings(
    expert: pd.DataFrame, crowd: pd.DataFrame, texts: pd.DataFrame, params: RatingParams | None = None
) -> AggregatedRatings:
    """Union of expert and crowd pairs with one target each; pairs whose caption text is unknown are dropped."""
    params = params or RatingParams()
    experts = expert[PAIR].copy()
    experts["expert_score"] = expert_scores(expert, params.expert_method).to_numpy()
    # A repeated pair would otherwise be double-weighted; contracts upstream forbid it, this keeps it safe.
    experts = experts.groupby(PAIR, as_index=False, sort=False)[["expert_score"]].mean()
    crowds = crowd[PAIR].copy()
    crowds["crowd_share"] = crowd["share_yes"].astype(float).to_numpy()
    crowds = crowds.groupby(PAIR, as_index=False, sort=False)[["crowd_share"]].mean()

    pairs = experts.merge(crowds, on=PAIR, how="outer", sort=True)
    has_expert, has_crowd = pairs["expert_score"].notna(), pairs["crowd_share"].notna()
    pairs["source"] = np.select([has_expert & has_crowd, has_expert], ["both", "expert"], default="crowd")
    pairs["target"] = blend_targets(
        pairs["expert_score"], pairs["crowd_share"], params.expert_weight, params.crowd_weight
    )

    known = texts[["query_id", "query_text"]].drop_duplicates("query_id")
    known = known[known["query_text"].astype(str).str.strip() != ""]
    pairs = pairs.merge(known, on="query_id", how="left")
    unknown = pairs["query_text"].isna()
    pairs = pairs[~unknown].reset_index(drop=True)[OUTPUT_COLUMNS]

    counts = RatingCounts(
        expert_pairs=len(experts),
        crowd_pairs=len(crowds),
        both=int((has_expert & has_crowd).sum()),
        expert_only=int((has_expert & ~has_crowd).sum()),
        crowd_only=int((~has_expert & has_crowd).sum()),
        unknown_text_dropped=int(unknown.sum()),
        pairs=len(pairs),
    )
    return AggregatedRatings(pairs=pairs, counts=counts)
