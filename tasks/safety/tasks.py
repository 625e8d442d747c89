"""Prefect wrapper for the child-content filter: screen, filter, check, write the safe training set."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.ingest.dataset import IngestedDataset
from tasks.ratings.aggregate import AggregatedRatings, RatingParams
from tasks.safety.text_screen import SafetyOutcome, apply_child_safety
from tasks.workspace import Workspace, write_json_atomic, write_parquet_atomic

TRAINING_PAIRS_FILE = "training_pairs.parquet"
REMOVED_PAIRS_FILE = "child_flagged_pairs.parquet"
TEXT_FLAGS_FILE = "child_text_flags.parquet"
IMAGE_FLAGS_FILE = "child_image_flags.parquet"
SAFETY_SUMMARY_FILE = "training_summary.json"


def write_safe_training_set(
    outcome: SafetyOutcome, ratings: AggregatedRatings, params: RatingParams, version_dir: Path
) -> Path:
    """The filtered pairs plus the flags and counts that explain them, each file written atomically."""
    write_parquet_atomic(version_dir / TRAINING_PAIRS_FILE, outcome.kept)
    write_parquet_atomic(version_dir / REMOVED_PAIRS_FILE, outcome.removed)
    write_parquet_atomic(version_dir / TEXT_FLAGS_FILE, outcome.text_flags)
    write_parquet_atomic(version_dir / IMAGE_FLAGS_FILE, outcome.image_flags)
    write_json_atomic(
        version_dir / SAFETY_SUMMARY_FILE,
        {"rating_params": params.model_dump(), "ratings": ratings.counts.as_dict(), "safety": asdict(outcome.summary)},
    )
    return version_dir / TRAINING_PAIRS_FILE


@task(name="child-safety", cache_policy=NO_CACHE)
def child_safety_task(
    dataset: IngestedDataset, ratings: AggregatedRatings, params: RatingParams, workspace: Workspace
) -> SafetyOutcome:
    """Drop pairs whose text or image is about children; enforce that none remain; store the safe set."""
    from data_contracts.ratings import SAFE_TRAINING_PAIRS_CONTRACT, prepare_safe_training_pairs
    from data_contracts.runner import enforce

    outcome = apply_child_safety(ratings.pairs, dataset.texts())
    flagged_texts = set(outcome.text_flags.loc[outcome.text_flags["flagged"], "query_id"])
    flagged_images = set(outcome.image_flags.loc[outcome.image_flags["flagged"], "image"])
    enforce(
        prepare_safe_training_pairs(outcome.kept, flagged_texts, flagged_images),
        SAFE_TRAINING_PAIRS_CONTRACT,
        "safety-filtered training pairs",
    )
    version = dataset.summary.data_hash[:16]
    path = write_safe_training_set(outcome, ratings, params, workspace.dataset_dir(version))
    summary = outcome.summary
    create_table_artifact(
        key="child-safety-counts",
        table=[{"count": k, "value": v} for k, v in asdict(summary).items() if k != "terms"]
        + [{"count": "flagged_pair_share", "value": round(summary.flagged_pair_share, 4)}],
        description="Child-content filter: texts, images and pairs flagged and kept",
    )
    terms = "\n".join(f"| {term} | {n} |" for term, n in summary.terms.items()) or "| (none) | 0 |"
    create_markdown_artifact(
        key="child-safety-summary",
        markdown=(
            f"## Child-content filter\n\n"
            f"{summary.texts_flagged} of {summary.texts_screened} texts and {summary.images_flagged} of "
            f"{summary.images_with_captions} captioned images flagged.\n\n"
            f"Pairs: {summary.pairs_before} before, {summary.pairs_flagged} removed "
            f"({summary.flagged_pair_share:.1%}; {summary.pairs_flagged_by_text} by text, "
            f"{summary.pairs_flagged_by_image} by image), {summary.pairs_after} kept.\n\n"
            f"Safe training set: `{path}`\n\n| term | flagged texts |\n|---|---|\n{terms}\n"
        ),
        description="Child-content filter summary",
    )
    return outcome


@task(name="child-image-detector", cache_policy=NO_CACHE)
def child_detector_task(
    outcome: SafetyOutcome, train_images, image_encoder: str, workspace: Workspace, seed: int
) -> dict:
    """Learn to flag images without captions from the caption-derived flags of the training images.

    The detector and the caption flags are saved in the workspace, where indexing and search read them.
    `train_images` is the stage's image Embeddings (anything with `keys` and `lookup`).
    """
    from tasks.safety.image_detector import train_child_detector

    flags = outcome.image_flags[outcome.image_flags["image"].isin(set(train_images.keys))]
    labels = flags["flagged"].to_numpy(dtype=int)
    write_parquet_atomic(workspace.caption_flags_path, outcome.image_flags)
    if labels.sum() < 5 or (1 - labels).sum() < 5:
        raise ValueError(
            f"cannot train the child-image detector: {int(labels.sum())} "
            f"flagged and {int((1 - labels).sum())} unflagged "
            "captioned training images; need at least 5 of each"
        )
    detector, report = train_child_detector(train_images.lookup(flags["image"].tolist()), labels, seed=seed)
    path = detector.save(workspace.detector_path(image_encoder))
    summary = {
        "path": str(path),
        "image_encoder": image_encoder,
        "train_images": report.train_images,
        "validation": asdict(report.validation),
        "test": asdict(report.test),
    }
    write_json_atomic(path.with_suffix(".json"), summary)
    test, val = report.test, report.validation
    create_markdown_artifact(
        key="child-image-detector",
        markdown=(
            "## Child-image detector\n\n"
            f"Logistic regression on `{image_encoder}` embeddings, "
            f"trained on {report.train_images} captioned images.\n\n"
            "| split | threshold | precision | recall | positives | flagged |\n|---|---|---|---|---|---|\n"
            f"| validation (threshold chosen for recall ≥ 0.95) | {val.threshold:.3f} | "
            f"{val.precision:.3f} | {val.recall:.3f} | {val.positives} | {val.flagged} |\n"
            f"| held-out test | {test.threshold:.3f} | {test.precision:.3f} "
            f"| {test.recall:.3f} | {test.positives} | {test.flagged} |\n"
        ),
        description="Precision and recall of the image-level child detector on held-out images",
    )
    return summary
