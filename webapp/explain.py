"""What the search page says about scores and what it offers to try: the score bands and the example queries.

A score is the champion's relevance in [0, 1], trained on how many raters said a caption fits an image; the
bands put that in words. Their thresholds live here and nowhere else (the API sends each hit's band). Scores rank
images for one query; they are not comparable across queries (on the sample, a nonsense query's best image can
score 0.5), so the words stay modest about what a band promises.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreBand:
    name: str  # the CSS class and the API's `band`
    label: str  # what the page shows
    at_least: float  # lowest score in the band
    meaning: str  # the legend's explanation


# Highest first. Below the last band a hit is "no match": the page hides such hits unless asked.
SCORE_BANDS: tuple[ScoreBand, ...] = (
    ScoreBand("strong", "strong match", 0.5, "the model expects most people to say the picture fits"),
    ScoreBand("fair", "fair match", 0.25, "the model expects some people to say it fits"),
    ScoreBand("weak", "weak match", 0.1, "the model expects few people to say it fits"),
)
NO_MATCH = ScoreBand("none", "no match", 0.0, "the model expects nobody to say it fits")

# Everyday scenes of the course data (and of the embedded sample), none about children.
EXAMPLE_QUERIES: tuple[str, ...] = (
    "a dog runs on the grass",
    "a man walks in the snow",
    "a woman on the beach",
    "a red car on the street",
)


def band_of(score: float) -> ScoreBand:
    """The band a score in [0, 1] falls in."""
    return next((band for band in SCORE_BANDS if score >= band.at_least), NO_MATCH)
