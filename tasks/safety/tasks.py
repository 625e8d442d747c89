"""Prefect wrapper for the child-content filter: screen, filter, check, write the safe training set."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.ingest.dataset import IngestedDataset
from tasks.ratings.aggregate import AggregatedRatings, RatingParams
from tasks.safety.image_detector import (
    ChildImageDetector,
    Thresholds,
    choose_thresholds,
    new_classifier,
    operating_point,
    out_of_fold_scores,
    views_of,
)
from tasks.safety.image_labels import ImageLabels, label_images
from tasks.safety.policy import (
    ImageSafetyParams,
    decide,
    detector_params,
    drop_hidden_images,
    human_flags,
    image_evidence,
    record_training_decisions,
)
from tasks.safety.text_screen import SafetyOutcome, apply_child_safety
from tasks.workspace import Workspace, dataset_version, text_sha256, write_json_atomic, write_parquet_atomic

TRAINING_PAIRS_FILE = "training_pairs.parquet"
REMOVED_PAIRS_FILE = "child_flagged_pairs.parquet"
TEXT_FLAGS_FILE = "child_text_flags.parquet"
IMAGE_FLAGS_FILE = "child_image_flags.parquet"
SAFETY_SUMMARY_FILE = "training_summary.json"

if TYPE_CHECKING:
    from tasks.safety.tuned_detector import FinetuneParams


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


@dataclass(frozen=True)
class DetectorFeatures:
    """Detector-encoder features of the training images: the labelled ones, row-aligned with `images` and
    `labels`, and those no caption or rating speaks for (decided by the fitted detector, never trained on)."""

    encoder_id: str
    images: list[str]
    features: np.ndarray | None  # None for a fine-tuned detector: it learns from trunk maps, not from these
    labels: np.ndarray
    unlabelled_images: list[str]
    unlabelled_features: np.ndarray


@dataclass(frozen=True)
class ImageSafetyReport:
    """The published operating point of one run: thresholds, and the detector alone at each, out of fold."""

    encoder_id: str
    min_captions: int
    label_counts: dict
    high_recall: dict
    confident: dict
    training_images_hidden_by_detector: int

    def as_dict(self) -> dict:
        return asdict(self)


@task(name="label-images", cache_policy=NO_CACHE)
def label_images_task(
    dataset: IngestedDataset, ratings: AggregatedRatings, outcome: SafetyOutcome, workspace: Workspace
) -> ImageLabels:
    """Which images show a child by their own captions or by the ratings; saved where search reads them, with
    each image file's sha256 (captions vouch only for the bytes they were written for)."""
    from tasks.embed.cache import hash_files

    images = sorted(set(dataset.image_files["image"]) | set(outcome.image_flags["image"]))
    flagged_queries = set(outcome.text_flags.loc[outcome.text_flags["flagged"], "query_id"])
    labels = label_images(images, outcome.image_flags, ratings.pairs, flagged_queries)
    files = dataset.image_files[["folder", "image"]].drop_duplicates("image")
    paths = [dataset.data_dir / folder / image for folder, image in zip(files["folder"], files["image"], strict=True)]
    digests = dict(zip(files["image"], hash_files(paths), strict=True))
    flags = human_flags(labels)
    write_parquet_atomic(workspace.caption_flags_path, flags.assign(sha256=flags["image"].map(digests)))
    counts = labels.counts
    get_run_logger().info(
        "image labels: %d children of %d images (captions %d, experts +%d, crowd +%d)",
        counts.children,
        counts.images,
        counts.by_captions,
        counts.added_by_expert,
        counts.added_by_crowd,
    )
    return labels


def training_labels(dataset: IngestedDataset, labels: ImageLabels) -> pd.DataFrame:
    """The label table's rows of the training images (the only images a detector learns from)."""
    train = set(dataset.image_files.loc[dataset.image_files["folder"] == "train_images", "image"])
    return labels.table[labels.table["image"].isin(train)]


@task(name="embed-detector-features", cache_policy=NO_CACHE)
def detector_features_task(
    dataset: IngestedDataset, labels: ImageLabels, encoder_id: str, workspace: Workspace
) -> DetectorFeatures:
    """The detector encoder's features of every training image (through the embedding cache)."""
    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder

    table = training_labels(dataset, labels)
    images = table["image"].tolist()
    features = embed_image_files(
        [dataset.train_image_dir / n for n in images], get_image_encoder(encoder_id), workspace
    ).matrix
    known = table["labelled"].to_numpy(dtype=bool)
    return DetectorFeatures(
        encoder_id,
        table.loc[known, "image"].tolist(),
        features[known],
        table.loc[known, "child"].to_numpy(dtype=int),
        table.loc[~known, "image"].tolist(),
        features[~known],
    )


@task(name="score-out-of-fold", cache_policy=NO_CACHE)
def out_of_fold_task(features: DetectorFeatures, params: ImageSafetyParams, seed: int) -> np.ndarray:
    """Each labelled image scored by a detector fitted on the other folds: the validation scores."""
    assert features.features is not None, "the linear detector reads the labelled images' features"
    return out_of_fold_scores(features.features, features.labels, params.folds, seed, views_of(features.encoder_id))


@task(name="choose-thresholds", cache_policy=NO_CACHE)
def choose_thresholds_task(
    oof: np.ndarray, features: DetectorFeatures, params: ImageSafetyParams, seed: int
) -> Thresholds:
    """High-recall and confident thresholds from the out-of-fold scores (precision_recall_curve)."""
    thresholds = choose_thresholds(oof, features.labels, detector_params(params, seed))
    get_run_logger().info("thresholds: high-recall %.3f, confident %.3f", thresholds.high_recall, thresholds.confident)
    return thresholds


@task(name="fit-detector", cache_policy=NO_CACHE)
def fit_detector_task(
    features: DetectorFeatures, thresholds: Thresholds, seed: int, workspace: Workspace
) -> ChildImageDetector:
    """The final detector on every labelled image, saved with its thresholds where search reads it."""
    assert features.features is not None, "the linear detector reads the labelled images' features"
    views = views_of(features.encoder_id)
    model = new_classifier(seed, views).fit(np.asarray(features.features, dtype=np.float64), features.labels)
    detector = ChildImageDetector(model, features.encoder_id, thresholds)
    detector.save(workspace.detector_path)
    return detector


# The fine-tuned detector (`tasks/safety/tuned_detector.py`): trunk maps once, a fit per fold for the out-of-fold
# scores, then the final fit. A fit is reused while the labelled images (their bytes and labels) and the settings
# stay the same, so a retrain on new ratings that change no label trains no network.


@dataclass(frozen=True)
class TunedFit:
    """What a fine-tune learned: the final tail's encoder id and classifier, and the out-of-fold scores."""

    encoder_id: str
    model: Any  # TunedLinear
    images: list[str]
    labels: np.ndarray
    oof: np.ndarray


def tuned_fit_key(digests: list[str], labels: np.ndarray, params: ImageSafetyParams, seed: int) -> str:
    """The hash of everything a fine-tune depends on: each labelled image's bytes and label, folds, seed, settings."""
    from tasks.safety.tuned_detector import BASE_ENCODER, FIT_VERSION, FinetuneParams

    record = {
        "version": FIT_VERSION,
        "base": BASE_ENCODER,
        "finetune": asdict(FinetuneParams()),
        "folds": params.folds,
        "seed": seed,
        "images": sorted(zip(digests, np.asarray(labels).astype(int).tolist(), strict=True)),
    }
    return text_sha256(json.dumps(record, sort_keys=True))


@task(name="finetune-trunk-maps", cache_policy=NO_CACHE)
def trunk_maps_task(paths: list[Path], finetune: FinetuneParams, workers: int) -> list[list[np.ndarray]]:
    """Each labelled image's five tile views through the frozen part of Lite0, once for every fit (in chunks over
    `workers` single-thread processes)."""
    from tasks.progress import ProgressLog
    from tasks.safety.tuned_detector import trunk_maps_side_by_side

    lines = ProgressLog("fine-tune: trunk maps of the labelled images", len(paths), get_run_logger())
    lines.batch_size(1)  # starts the clock
    return trunk_maps_side_by_side(paths, finetune.trained_from, workers, progress=lines.reach)


@task(name="finetune-detector", cache_policy=NO_CACHE)
def tuned_fits_task(
    maps: list[list[np.ndarray]],
    labels: np.ndarray,
    params: ImageSafetyParams,
    finetune: FinetuneParams,
    seed: int,
    workers: int,
    workspace: Workspace,
) -> tuple[np.ndarray, str, Any]:
    """One fit per fold (the out-of-fold scores the thresholds are chosen on, same folds as the linear detector)
    and the final fit on every labelled image, side by side in `workers` processes; the final tail's weights saved
    under the workspace. Returns (out-of-fold scores, encoder id, classifier)."""
    from sklearn.model_selection import StratifiedKFold

    from tasks.embed.encoders.models import TILE_BOXES
    from tasks.safety.tuned_detector import TunedLinear, fit_folds_and_final, save_tail

    logger = get_run_logger()
    folds = list(StratifiedKFold(params.folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    logger.info(
        "fine-tune: %d fold fits and the final fit on %d labelled images, %d at a time",
        len(folds),
        len(labels),
        workers,
    )
    fits = fit_folds_and_final(maps, labels, folds, finetune, seed, workers, functools.partial(_log_fit, logger))
    encoder_id = save_tail(fits.final, finetune, workspace.tuned_detector_dir)
    return fits.oof, encoder_id, TunedLinear.from_tail(fits.final, len(TILE_BOXES))


def _log_fit(logger: Any, line: str) -> None:
    logger.info("fine-tune %s", line)


def tuned_detector_steps(
    dataset: IngestedDataset, labels: ImageLabels, params: ImageSafetyParams, seed: int, workspace: Workspace
) -> tuple[DetectorFeatures, np.ndarray, ChildImageDetector]:
    """The fine-tuned detector as visible steps (or its earlier fit, when nothing it learned from changed):
    (the training images' detector features, out-of-fold scores of the labelled ones, the saved detector)."""
    import joblib

    from tasks.embed.cache import embed_image_files, hash_files
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.parallel import worker_count
    from tasks.safety.tuned_detector import FinetuneParams, register_weights
    from tasks.workspace import atomic_path

    logger = get_run_logger()
    table = training_labels(dataset, labels)
    known = table["labelled"].to_numpy(dtype=bool)
    images, y = table.loc[known, "image"].tolist(), table.loc[known, "child"].to_numpy(dtype=int)
    if min(int(y.sum()), int((1 - y).sum())) < params.folds:
        raise ValueError(
            f"cannot fine-tune the child-image detector: {int(y.sum())} child and {int((1 - y).sum())} other "
            f"labelled images; need at least {params.folds} of each"
        )
    paths = [dataset.train_image_dir / n for n in images]
    key = tuned_fit_key(hash_files(paths), y, params, seed)
    cached = workspace.tuned_detector_dir / f"fit-{key[:24]}.joblib"
    fit = _read_fit(cached, images, y)
    if fit is not None:
        logger.info("fine-tuned detector reused: %s (labelled images and settings unchanged)", fit.encoder_id)
        cached.touch()  # recently used: pruning keeps the newest fits
    else:
        finetune, workers = FinetuneParams(), worker_count(params.finetune_workers)
        maps = trunk_maps_task(paths, finetune, workers)
        oof, encoder_id, model = tuned_fits_task(maps, y, params, finetune, seed, workers, workspace)
        del maps
        fit = TunedFit(encoder_id, model, images, y, oof)
        with atomic_path(cached) as tmp:
            joblib.dump(fit, tmp)
        removed = prune_tuned_fits(workspace.tuned_detector_dir, also_keep={_serving_encoder(workspace)})
        if removed:
            logger.info("removed %d older fine-tuned detector file(s) from %s", removed, workspace.tuned_detector_dir)
    register_weights(fit.encoder_id, workspace.tuned_detector_dir / f"{fit.encoder_id}.pt")
    unlabelled = table.loc[~known, "image"].tolist()
    encoder = get_image_encoder(fit.encoder_id)
    rows = embed_image_files([dataset.train_image_dir / n for n in unlabelled], encoder, workspace).matrix
    features = DetectorFeatures(fit.encoder_id, images, None, y, unlabelled, rows)
    detector = ChildImageDetector(fit.model, fit.encoder_id, choose_thresholds_task(fit.oof, features, params, seed))
    detector.save(workspace.detector_path)
    return features, fit.oof, detector


KEEP_TUNED_FITS = 3


def _serving_encoder(workspace: Workspace) -> str:
    """The encoder id of the detector in place before this run ("" if none or unreadable)."""
    try:
        return ChildImageDetector.load(workspace.detector_path).encoder_id
    except Exception:  # noqa: BLE001 -- nothing readable to protect
        return ""


def prune_tuned_fits(
    folder: Path, keep: int = KEEP_TUNED_FITS, also_keep: frozenset[str] | set[str] = frozenset()
) -> int:
    """Delete all but the `keep` newest (or last used) fits and every weights file that none of them uses and that
    is not in `also_keep` (the detector being served); returns how many files were removed.

    Each change of the labels makes a new fit (3 MB of weights). The newest few stay, so a server still serving
    the previous detector until it reloads finds its weights, and a switch back to recent labels trains nothing."""
    import joblib

    fits = sorted(folder.glob("fit-*.joblib"), key=lambda p: p.stat().st_mtime, reverse=True)
    used: set[str] = set(also_keep)
    removed = 0
    for path in fits[:keep]:
        try:
            used.add(joblib.load(path).encoder_id)
        except Exception:  # noqa: BLE001 -- unreadable: it would be trained again anyway
            continue
    for path in fits[keep:]:
        path.unlink(missing_ok=True)
        removed += 1
    for weights in folder.glob("*.pt"):
        if weights.stem not in used:
            weights.unlink(missing_ok=True)
            removed += 1
    return removed


def _read_fit(path: Path, images: list[str], labels: np.ndarray) -> TunedFit | None:
    """An earlier fit of the same key, if it is whole and its weights are still there; else None (train again)."""
    import joblib

    if not path.is_file():
        return None
    try:
        fit = joblib.load(path)
    except Exception:  # noqa: BLE001 -- an unreadable cache entry only costs a new fit
        return None
    same = isinstance(fit, TunedFit) and fit.images == images and np.array_equal(fit.labels, labels)
    if not same or not (path.parent / f"{fit.encoder_id}.pt").is_file():
        return None
    return fit


@task(name="hide-training-pairs", cache_policy=NO_CACHE)
def hide_training_pairs_task(
    outcome: SafetyOutcome,
    labels: ImageLabels,
    features: DetectorFeatures,
    oof: np.ndarray,
    detector: ChildImageDetector,
    params: ImageSafetyParams,
    dataset: IngestedDataset,
    workspace: Workspace,
) -> tuple[SafetyOutcome, pd.DataFrame]:
    """The training set under the same decision as search; training images are judged by their out-of-fold
    scores (a model that saw an image's label would vouch for it). Rewrites the stored safe training set, and
    records each training image's out-of-fold score and decision with the human evidence search reads."""
    from data_contracts.ratings import SAFE_TRAINING_PAIRS_CONTRACT, prepare_safe_training_pairs
    from data_contracts.runner import enforce

    images = features.images + features.unlabelled_images
    scores = np.concatenate([oof, detector.scores(features.unlabelled_features)])
    decisions = decide(image_evidence(images, human_flags(labels)), scores, detector.thresholds, params.min_captions)
    hidden = set(decisions.loc[decisions["hidden"], "image"]) | labels.children()
    kept = drop_hidden_images(outcome, hidden)
    # Search, scoring and /images/ judge a training image by the same out-of-fold score and decision.
    flags = pd.read_parquet(workspace.caption_flags_path)
    write_parquet_atomic(
        workspace.caption_flags_path, record_training_decisions(flags, decisions, features.images, oof)
    )
    flagged_texts = set(outcome.text_flags.loc[outcome.text_flags["flagged"], "query_id"])
    enforce(prepare_safe_training_pairs(kept.kept, flagged_texts, hidden), SAFE_TRAINING_PAIRS_CONTRACT, "safe pairs")
    version_dir = workspace.dataset_dir(dataset_version(dataset.summary.data_hash))
    write_parquet_atomic(version_dir / TRAINING_PAIRS_FILE, kept.kept)
    write_parquet_atomic(version_dir / REMOVED_PAIRS_FILE, kept.removed)
    return kept, decisions


@task(name="publish-detector-report", cache_policy=NO_CACHE)
def publish_detector_report_task(
    labels: ImageLabels,
    features: DetectorFeatures,
    oof: np.ndarray,
    detector: ChildImageDetector,
    decisions: pd.DataFrame,
    params: ImageSafetyParams,
    dataset: IngestedDataset,
    workspace: Workspace,
) -> ImageSafetyReport:
    """The operating point as a Prefect artifact and in the dataset version's training_summary.json."""
    t = detector.thresholds
    report = ImageSafetyReport(
        encoder_id=detector.encoder_id,
        min_captions=params.min_captions,
        label_counts=asdict(labels.counts),
        high_recall=asdict(operating_point(oof, features.labels, t.high_recall)),
        confident=asdict(operating_point(oof, features.labels, t.confident)),
        training_images_hidden_by_detector=int((decisions["source"] == "detector").sum()),
    )
    summary_path = workspace.dataset_dir(dataset_version(dataset.summary.data_hash)) / SAFETY_SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    write_json_atomic(summary_path, summary | {"image_safety": report.as_dict()})
    write_json_atomic(workspace.detector_path.with_suffix(".json"), report.as_dict())
    create_markdown_artifact(key="child-image-detector", markdown=render_report(report), description=REPORT_TITLE)
    return report


def describe_detector(encoder_id: str) -> str:
    from tasks.safety.tuned_detector import is_tuned

    if is_tuned(encoder_id):
        return f"EfficientNet-Lite0 with its head fine-tuned on the labelled images (`{encoder_id}`)"
    return f"Logistic regression on `{encoder_id}` features"


REPORT_TITLE = "Child-image detector: thresholds and operating point (out of fold)"


def render_report(report: ImageSafetyReport) -> str:
    rows = []
    for name, point in (
        ("high-recall (uncaptioned images)", report.high_recall),
        ("confident (captioned images)", report.confident),
    ):
        rows.append(
            f"| {name} | {point['threshold']:.3f} | {point['precision']:.3f} | {point['recall']:.3f} | "
            f"{point['children_hidden']}/{point['children']} | {point['adults_kept_share']:.1%} |"
        )
    c = report.label_counts
    return (
        f"## Child-image detector\n\n{describe_detector(report.encoder_id)}. Labels: "
        f"{c['children']} of {c['images']} images show a child ({c['by_captions']} by own captions, "
        f"+{c['added_by_expert']} by experts, +{c['added_by_crowd']} by the crowd).\n\n"
        "| threshold | value | precision | recall | children hidden | adult images kept |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nAn image with at least {report.min_captions} own caption(s), none about a child, is hidden only "
        f"at the confident threshold; {report.training_images_hidden_by_detector} training images were hidden "
        "by the detector.\n"
    )


@dataclass(frozen=True)
class ImageSafetyResult:
    outcome: SafetyOutcome  # the training pairs with every hidden image's pairs removed
    hidden_images: frozenset[str]  # training images the decision hides (by humans or by the detector)
    report: ImageSafetyReport


def image_safety(
    dataset: IngestedDataset,
    outcome: SafetyOutcome,
    labels: ImageLabels,
    image_encoder: str,
    params: ImageSafetyParams,
    seed: int,
    workspace: Workspace,
) -> ImageSafetyResult:
    """The image half of child safety as visible steps: features, validation scores, thresholds, detector,
    the training set under the decision, and the published operating point."""
    encoder_id = params.encoder_for(image_encoder)
    table = training_labels(dataset, labels)
    labelled = table.loc[table["labelled"], "child"].to_numpy(dtype=int)
    if params.finetunes(encoder_id, len(labelled), int(labelled.sum())):
        features, oof, detector = tuned_detector_steps(dataset, labels, params, seed, workspace)
    else:
        features = detector_features_task(dataset, labels, encoder_id, workspace)
        oof = out_of_fold_task(features, params, seed)
        thresholds = choose_thresholds_task(oof, features, params, seed)
        detector = fit_detector_task(features, thresholds, seed, workspace)
    kept, decisions = hide_training_pairs_task(outcome, labels, features, oof, detector, params, dataset, workspace)
    report = publish_detector_report_task(labels, features, oof, detector, decisions, params, dataset, workspace)
    hidden = frozenset(decisions.loc[decisions["hidden"], "image"]) | labels.children()
    return ImageSafetyResult(kept, hidden, report)
