"""Which texts and images the child-content screen flagged, as sets: the one place that reads the flag frames."""

from __future__ import annotations

import pandas as pd


def flagged_texts(text_flags: pd.DataFrame) -> set[str]:
    """Query ids of flagged texts (`text_flags` has query_id and flagged, as `screen_texts` returns)."""
    return set(text_flags.loc[text_flags["flagged"], "query_id"])


def flagged_images(image_flags: pd.DataFrame) -> set[str]:
    """Names of images flagged by their own captions (`image_flags` has image and flagged)."""
    return set(image_flags.loc[image_flags["flagged"], "image"])
