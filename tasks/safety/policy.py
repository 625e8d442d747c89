"""The one safety decision that search, pair scoring, /images/, the HTML report and the training set all use.

Evidence per image: its own human captions (how many, and whether any mentions a child), the ratings (rated
as matching a caption about a child), and the detector's score. The decision (DESIGN.md, "Safety decision"):
- a caption or a rating says the image shows a child -> hidden;
- at least `min_captions` own captions, none about a child -> hidden only at the detector's confident threshold;
- fewer captions (an image nobody described) -> hidden at the detector's high-recall threshold.
`min_captions` is 1 by default: practicum-dev has one caption per image, and there a single caption that
describes the people in a photo as adults is already strong evidence (README, "Child safety").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.safety.image_detector import ChildImageDetector, DetectorParams, Thresholds
from tasks.safety.image_labels import ImageLabels
from tasks.safety.text_screen import SafetyOutcome
from tasks.workspace import Workspace

DEFAULT_MIN_CAPTIONS = 1
DETECTOR_ENCODER = "efficientnet-lite0-tileviews"
DECISION_COLUMNS = ["image", "hidden", "source", "detail", "score", "threshold"]


def image_evidence(images: list[str], human_flags: pd.DataFrame | None) -> pd.DataFrame:
    """image, captions, flagged, source, terms for `images`; an image the table does not know has no captions."""
    frame = pd.DataFrame({"image": list(images)})
    if human_flags is None or human_flags.empty:
        no_terms: list[list[str]] = [[] for _ in images]
        return frame.assign(captions=0, flagged=False, source="", terms=pd.Series(no_terms, dtype=object))
    known = human_flags.drop_duplicates("image")
    if "source" not in known:  # flags written before rating labels existed: every flag came from captions
        known = known.assign(source=np.where(known["flagged"], "captions", ""))
    frame = frame.merge(known[["image", "captions", "flagged", "source", "terms"]], on="image", how="left")
    frame["source"] = frame["source"].fillna("").astype(str)
    frame["captions"] = frame["captions"].fillna(0).astype(int)
    frame["flagged"] = frame["flagged"].astype("boolean").fillna(False).astype(bool)
    frame["terms"] = [list(t) if isinstance(t, list | tuple | np.ndarray) else [] for t in frame["terms"]]
    return frame


def _detail(human_source: str, terms: list[str], score: float, threshold: float, described: bool) -> str:
    if human_source == "captions":
        return ", ".join(terms)
    if human_source:
        return "rated as matching a caption about a child"
    rule = "captioned: confident threshold" if described else "uncaptioned: high-recall threshold"
    return f"score {score:.3f} >= {threshold:.3f} ({rule})"


def decide(evidence: pd.DataFrame, scores: np.ndarray, thresholds: Thresholds, min_captions: int) -> pd.DataFrame:
    """One row per evidence row: hidden, source ("captions" | "ratings" | "detector" | ""), detail, score, threshold."""
    scores = np.asarray(scores, dtype=float)
    described = evidence["captions"].to_numpy() >= min_captions
    threshold = np.where(described, thresholds.confident, thresholds.high_recall)
    by_humans = evidence["flagged"].to_numpy(dtype=bool)
    by_detector = ~by_humans & (scores >= threshold)
    human_source = np.where(evidence["source"].to_numpy(dtype=str) == "ratings", "ratings", "captions")
    source = np.where(by_humans, human_source, np.where(by_detector, "detector", ""))
    detail = [
        _detail(str(src) if src != "detector" else "", terms, score, limit, bool(desc)) if src else ""
        for src, terms, score, limit, desc in zip(source, evidence["terms"], scores, threshold, described, strict=True)
    ]
    return pd.DataFrame(
        {
            "image": evidence["image"].to_numpy(),
            "hidden": by_humans | by_detector,
            "source": source,
            "detail": detail,
            "score": scores,
            "threshold": threshold,
        }
    )


@dataclass(frozen=True)
class SafetyPolicy:
    """The detector (with its thresholds), the human evidence per dataset image, and the caption rule.

    Captions vouch for a file only when its bytes are the dataset image they were written for (`sha256`); a
    human flag hides a file by its name or by its bytes, so neither renaming nor copying a flagged image helps.
    """

    detector: ChildImageDetector
    human_flags: pd.DataFrame | None
    min_captions: int = DEFAULT_MIN_CAPTIONS

    @classmethod
    def load(cls, workspace: Workspace) -> SafetyPolicy:
        import json

        flags_path, report_path = workspace.caption_flags_path, workspace.detector_path.with_suffix(".json")
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        return cls(
            ChildImageDetector.load(workspace.detector_path),
            pd.read_parquet(flags_path) if flags_path.is_file() else None,
            int(report.get("min_captions", DEFAULT_MIN_CAPTIONS)),
        )

    def evidence_for_files(self, paths: list[Path], digests: list[str] | None = None) -> pd.DataFrame:
        """`image_evidence` for files: captions count only for the bytes they were written for; a copy of a
        human-flagged image is flagged. `digests` (sha256 of each file) are computed when not given."""
        from tasks.embed.cache import hash_files

        names = [Path(p).name for p in paths]
        evidence = image_evidence(names, self.human_flags)
        flags = self.human_flags
        if flags is None or flags.empty or "sha256" not in flags:
            return evidence.assign(captions=0)
        digests = hash_files([Path(p) for p in paths]) if digests is None else digests
        by_hash = flags.drop_duplicates("sha256").set_index("sha256")
        recorded = dict(zip(by_hash.index, by_hash["image"], strict=True))
        same_bytes = np.array([recorded.get(d) == n for d, n in zip(digests, names, strict=True)], dtype=bool)
        evidence["captions"] = np.where(same_bytes, evidence["captions"], 0)
        flagged_hashes = set(flags.loc[flags["flagged"], "sha256"])
        copies = np.array([d in flagged_hashes for d in digests], dtype=bool)
        evidence["source"] = np.where(copies & ~evidence["flagged"], "captions", evidence["source"])
        evidence["flagged"] = evidence["flagged"].to_numpy(dtype=bool) | copies
        return evidence

    def decide_files(self, paths: list[Path], features: np.ndarray, digests: list[str] | None = None) -> pd.DataFrame:
        """The decision for image files whose detector features are given (row-aligned); `digests` (sha256 of
        each file) are computed when not given.

        A file whose bytes are a labelled training image is scored by its out-of-fold score, as the training
        set was: the final detector was fitted on that image's label, so a child no caption mentions (labelled
        "no child") scores low there (seed 0 of the sample: 0.169 against a threshold of 0.477). A file whose
        bytes are a training image the run hid stays hidden, whatever the detector says now.
        """
        from tasks.embed.cache import hash_files

        scores = self.detector.scores(features)
        flags = self.human_flags
        if flags is None or flags.empty or "sha256" not in flags or not len(paths):
            return decide(self.evidence_for_files(paths), scores, self.detector.thresholds, self.min_captions)
        digests = hash_files([Path(p) for p in paths]) if digests is None else digests
        evidence = self.evidence_for_files(paths, digests)
        scores = training_scores(flags, digests, scores)
        decisions = decide(evidence, scores, self.detector.thresholds, self.min_captions)
        return apply_training_decisions(decisions, flags, digests)


def record_training_decisions(
    flags: pd.DataFrame, decisions: pd.DataFrame, labelled: list[str], oof: np.ndarray
) -> pd.DataFrame:
    """`flags` (the human evidence per image) with what the run decided about its training images:
    `oof_score`, the out-of-fold score of each labelled training image (NaN for any other image), and `hidden`,
    True where the run hid the image (by humans or by the detector; for images it did not decide, the human
    flag). Search, scoring and /images/ read both, so a training image is judged as the training set judged it.
    """
    oof_by_image = dict(zip(labelled, np.asarray(oof, dtype=float), strict=True))
    hidden_by_image = dict(zip(decisions["image"], decisions["hidden"].to_numpy(dtype=bool), strict=True))
    oof_score = flags["image"].map(oof_by_image).astype(float)
    hidden = flags["image"].map(hidden_by_image).astype("boolean").fillna(flags["flagged"].astype(bool))
    return flags.assign(oof_score=oof_score, hidden=hidden.astype(bool))


def training_scores(flags: pd.DataFrame, digests: list[str], scores: np.ndarray) -> np.ndarray:
    """`scores` with the recorded out-of-fold score in place of the detector's wherever a file's bytes are a
    labelled training image (matched by sha256, so a renamed copy is judged the same)."""
    scores = np.asarray(scores, dtype=float).copy()
    if "oof_score" not in flags:
        return scores
    known = flags.dropna(subset=["oof_score", "sha256"]).drop_duplicates("sha256")
    oof_by_hash = dict(zip(known["sha256"], known["oof_score"].astype(float), strict=True))
    for k, digest in enumerate(digests):
        if digest in oof_by_hash:
            scores[k] = oof_by_hash[digest]
    return scores


def apply_training_decisions(decisions: pd.DataFrame, flags: pd.DataFrame, digests: list[str]) -> pd.DataFrame:
    """`decisions` with every file whose bytes are a training image the run hid marked hidden (source
    "detector" where no human evidence already hid it): the training set left it out, so no path shows it."""
    if "hidden" not in flags:
        return decisions
    hidden = flags[flags["hidden"].astype(bool)].dropna(subset=["sha256"]).drop_duplicates("sha256")
    oof = hidden["oof_score"] if "oof_score" in hidden else pd.Series(np.nan, index=hidden.index)
    hidden_hashes = dict(zip(hidden["sha256"], oof.astype(float), strict=True))
    newly = np.array([d in hidden_hashes for d in digests], dtype=bool) & ~decisions["hidden"].to_numpy(dtype=bool)
    if not newly.any():
        return decisions
    decisions = decisions.copy()
    decisions.loc[newly, "hidden"] = True
    decisions.loc[newly, "source"] = "detector"
    decisions.loc[newly, "detail"] = [
        "hidden with the training set" + ("" if np.isnan(s) else f" (out-of-fold score {s:.3f})")
        for s in (hidden_hashes[d] for d, new in zip(digests, newly, strict=True) if new)
    ]
    return decisions


class ImageSafetyParams(BaseModel):
    """How the image-level safety decision is learned and applied; the dashboard renders these as a form."""

    model_config = ConfigDict(extra="forbid")

    detector_encoder: str = Field(
        default="",
        description="Image encoder of the child detector; empty: Lite0 on the whole frame and its four quadrants, "
        "each view scored (efficientnet-lite0-tileviews) when the run's image encoder is an EfficientNet-Lite, "
        "else the run's image encoder",
    )
    high_recall: float = Field(default=0.95, gt=0, le=1, description="Recall of the threshold for uncaptioned images")
    confident_precision: float = Field(
        default=0.9, gt=0, le=1, description="Precision of the threshold that overrides human captions"
    )
    min_captions: int = Field(
        default=DEFAULT_MIN_CAPTIONS, ge=1, description="Own captions an image needs to count as described"
    )
    folds: int = Field(default=5, ge=2, description="Folds of the out-of-fold scores the thresholds are chosen on")
    detector: Literal["auto", "linear", "finetuned"] = Field(
        default="auto",
        description="linear: logistic regression on the detector encoder's features; finetuned: Lite0's head "
        "convolution trained on the labelled images (needs efficientnet-lite0-tileviews); auto: finetuned when at "
        "least finetune_min_images training images are labelled, else linear",
    )
    finetune_min_images: int = Field(
        default=400, ge=10, description="Labelled training images from which 'auto' fine-tunes the detector"
    )
    finetune_workers: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Processes that compute the fine-tune's trunk maps and run its fits side by side, one thread each "
        "(empty: one per CPU core, at most 4; 1: in this process on its threads)",
    )

    def finetunes(self, encoder_id: str, labelled: int, children: int) -> bool:
        """Is the detector fine-tuned (else linear)? A fine-tune needs Lite0 tile views and enough labels: on a
        small set (the embedded sample's 100 or so images) the linear detector is the measured one."""
        if self.detector == "linear":
            return False
        if encoder_id != DETECTOR_ENCODER:
            if self.detector == "finetuned":
                raise ValueError(
                    f"image_safety.detector='finetuned' fine-tunes {DETECTOR_ENCODER}, not {encoder_id!r}; "
                    "set image_safety.detector_encoder to it (or leave it empty) or use detector='linear'"
                )
            return False
        enough = labelled >= self.finetune_min_images and min(children, labelled - children) >= 2 * self.folds
        return self.detector == "finetuned" or enough

    def encoder_for(self, image_encoder: str) -> str:
        from tasks.embed.encoders.base import LITE_PACKAGES

        if self.detector_encoder:
            return self.detector_encoder
        # Lite0 whatever Lite the models use: Lite2 tiles detect no better on practicum-dev (out-of-fold AUC 0.916
        # against 0.909, adult images kept at recall 0.95 0.639 against 0.615) at 2.5 times the cost, and were 70 %
        # of a practicum-dev run (README, "Child safety").
        return DETECTOR_ENCODER if image_encoder in LITE_PACKAGES else image_encoder


def detector_params(params: ImageSafetyParams, seed: int = 0) -> DetectorParams:
    return DetectorParams(
        high_recall=params.high_recall, confident_precision=params.confident_precision, folds=params.folds, seed=seed
    )


def human_flags(labels: ImageLabels) -> pd.DataFrame:
    """The human evidence search reads by image name: captions, flagged (by captions or ratings), source, terms."""
    table = labels.table
    source = np.select([table["by_captions"], table["by_expert"] | table["by_crowd"]], ["captions", "ratings"], "")
    return pd.DataFrame(
        {
            "image": table["image"],
            "captions": table["captions"],
            "flagged_captions": table["flagged_captions"],
            "flagged": table["child"],
            "source": source,
            "terms": table["terms"],
        }
    )


def drop_hidden_images(outcome: SafetyOutcome, hidden: set[str]) -> SafetyOutcome:
    """The outcome with every pair of a `hidden` image moved to the removed pairs, and every hidden image marked
    flagged in `image_flags` (later stages, such as the captions the models train on, read the flags there)."""
    flags = outcome.image_flags
    missing = sorted(hidden - set(flags["image"]))
    extra = pd.DataFrame({"image": missing, "captions": 0, "flagged_captions": 0, "flagged": True})
    extra["terms"] = pd.Series([[] for _ in missing], dtype=object)
    flags = pd.concat([flags.assign(flagged=flags["flagged"] | flags["image"].isin(hidden)), extra], ignore_index=True)
    drop = outcome.kept["image"].isin(hidden)
    moved = outcome.kept[drop].assign(flagged_text=False, flagged_image=True)
    summary = replace(
        outcome.summary,
        pairs_flagged_by_image=outcome.summary.pairs_flagged_by_image + int(drop.sum()),
        pairs_flagged=outcome.summary.pairs_flagged + int(drop.sum()),
        pairs_after=outcome.summary.pairs_after - int(drop.sum()),
    )
    return replace(
        outcome,
        kept=outcome.kept[~drop].reset_index(drop=True),
        removed=pd.concat([outcome.removed, moved], ignore_index=True),
        image_flags=flags,
        summary=summary,
    )
