"""The text screen measured on its evaluation set: recall per child family, false refusals per adult family.

The set (`tests/safety/screen_eval.tsv`, columns family, label, text) holds child queries written in
families (plain, misspelling, leet, script, spacing, language, idiom, age) and adult near-misses
(plain, idiom, animal, product, name, age-of-thing, contains). The benchmark and the tests read it
through these functions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.safety.text_screen import ChildContentFilter

RECALL_TARGET = 0.98  # every child family
FALSE_REFUSAL_TARGET = 0.03  # every adult family
LABELS = ("child", "adult")


def read_eval_set(path: Path) -> pd.DataFrame:
    """(family, label, text) rows; tabs only separate columns, so texts keep their quotes and invisible characters."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf8")
    unknown = set(frame["label"]) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels in {path}: {sorted(unknown)}")
    return frame


def screen_eval_set(frame: pd.DataFrame, content_filter: ChildContentFilter | None = None) -> pd.DataFrame:
    """The rows plus `flagged` and `matches`."""
    screened = (content_filter or ChildContentFilter()).screen_series(frame["text"])
    return frame.assign(flagged=screened["flagged"].to_numpy(), matches=screened["matches"].to_numpy())


def family_rates(screened: pd.DataFrame) -> pd.DataFrame:
    """One row per (label, family): texts, flagged, and the rate that matters (recall for child families,
    false-refusal rate for adult ones), with the target and whether it is met."""
    grouped = screened.groupby(["label", "family"], sort=False)["flagged"]
    out = grouped.agg(texts="size", flagged="sum").reset_index()
    out["flagged"] = out["flagged"].astype(int)
    child = out["label"] == "child"
    out["metric"] = child.map({True: "recall", False: "false_refusal"})
    out["rate"] = out["flagged"] / out["texts"]
    out["target"] = child.map({True: RECALL_TARGET, False: FALSE_REFUSAL_TARGET})
    out["meets_target"] = (child & (out["rate"] >= out["target"])) | (~child & (out["rate"] <= out["target"]))
    return out


def errors(screened: pd.DataFrame) -> pd.DataFrame:
    """Missed child texts and refused adult texts."""
    wrong = screened["flagged"] != (screened["label"] == "child")
    return screened.loc[wrong, ["family", "label", "text", "matches"]]
