"""Which images show a child, from two kinds of human evidence: their own captions and the ratings.

An image shows a child when one of its own captions is flagged by the text screen, or when a rater said
it matches a caption that is flagged: an expert (aggregated score 3 or 4 on the 1-4 scale) or the crowd
(half or more of the raters said yes). The rating labels are weak (an expert who rates a man on a climbing
wall as a fair match for "a boy climbs up some rocks" makes the man a child here), but for this legal
requirement a wrongly hidden adult costs less than a missed child, and the detector trained on both sources
is better on either source alone (practicum-dev, README "Child safety").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# An expert score of 3 on the 1-4 scale, in the ratings stage's [0, 1] units ((score - 1) / 3).
EXPERT_MATCH = 2.0 / 3.0
CROWD_MATCH = 0.5


@dataclass(frozen=True)
class LabelCounts:
    """How many images each source labels as showing a child, and how many only that source labels."""

    images: int
    by_captions: int
    by_expert: int
    by_crowd: int
    added_by_expert: int  # not already labelled by captions
    added_by_crowd: int  # labelled by neither captions nor experts
    children: int


@dataclass(frozen=True)
class ImageLabels:
    """One row per image: captions, flagged_captions, by_captions, by_expert, by_crowd, child, terms."""

    table: pd.DataFrame
    counts: LabelCounts

    def children(self) -> set[str]:
        return set(self.table.loc[self.table["child"], "image"])


def rated_child_images(pairs: pd.DataFrame, flagged_queries: set[str]) -> tuple[set[str], set[str]]:
    """(expert, crowd): images rated as matching a flagged caption. `pairs` are the aggregated ratings."""
    about_child = pairs["query_id"].isin(flagged_queries)
    expert = pairs["expert_score"].fillna(-1.0) >= EXPERT_MATCH - 1e-9
    crowd = pairs["crowd_share"].fillna(-1.0) >= CROWD_MATCH
    return set(pairs.loc[about_child & expert, "image"]), set(pairs.loc[about_child & crowd, "image"])


def label_images(
    images: list[str], caption_flags: pd.DataFrame, rated_pairs: pd.DataFrame | None, flagged_queries: set[str]
) -> ImageLabels:
    """Labels for `images` from `caption_flags` (text_screen.image_flags), the aggregated rating pairs and the
    query_ids of the flagged captions.

    An image with no caption and no rating label gets captions == 0 and child == False: "no evidence", which
    the detector's training leaves out (see `labelled`).
    """
    table = pd.DataFrame({"image": images}).merge(caption_flags, on="image", how="left")
    table["captions"] = table["captions"].fillna(0).astype(int)
    table["flagged_captions"] = table["flagged_captions"].fillna(0).astype(int)
    table["terms"] = [list(t) if isinstance(t, list | tuple | np.ndarray) else [] for t in table["terms"]]
    table["by_captions"] = table["flagged_captions"] > 0
    expert: set[str] = set()
    crowd: set[str] = set()
    if rated_pairs is not None and len(rated_pairs):
        expert, crowd = rated_child_images(rated_pairs, flagged_queries)
    table["by_expert"] = table["image"].isin(expert)
    table["by_crowd"] = table["image"].isin(crowd)
    table["child"] = table["by_captions"] | table["by_expert"] | table["by_crowd"]
    table["labelled"] = (table["captions"] > 0) | table["child"]
    counts = LabelCounts(
        images=len(table),
        by_captions=int(table["by_captions"].sum()),
        by_expert=int(table["by_expert"].sum()),
        by_crowd=int(table["by_crowd"].sum()),
        added_by_expert=int((table["by_expert"] & ~table["by_captions"]).sum()),
        added_by_crowd=int((table["by_crowd"] & ~table["by_captions"] & ~table["by_expert"]).sum()),
        children=int(table["child"].sum()),
    )
    columns = [
        "image",
        "captions",
        "flagged_captions",
        "by_captions",
        "by_expert",
        "by_crowd",
        "child",
        "labelled",
        "terms",
    ]
    return ImageLabels(table[columns], counts)
