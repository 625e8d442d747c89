"""Bench: the child-image detector and the safety decision on practicum-dev.

Run by hand: `python bench/child_detector.py [DATA_DIR] [--encoders ID ...]`; writes bench/results/child_detector.json.

1. Labels: own captions flagged by the text screen, plus images an expert (score 3-4) or the crowd (share >= 0.5)
   rated as matching a flagged caption; how many each source adds.
2. Detector alone (captions withheld), out of fold over every labelled image (5-fold stratified, C tuned in an
   inner 3-fold CV): ROC AUC, and precision and adult images kept at recall 0.95 and 0.98, per image encoder.
3. The decision on the test gallery, with the pipeline's own steps: thresholds chosen out of fold on the
   labelled train images, the detector fitted on them, then the 100 test images (one caption each) decided.
Features come through the workspace's embedding cache (`--workspace`, default a folder under bench/), so a
rerun embeds nothing.

`--run-workspace WS` instead reads what a finished pipeline run on DATA_DIR (`IMGSEARCH_HOME=WS imgsearch run
DATA_DIR`) decided, with its own detector (the linear one or the fine-tuned one, whichever the run trained): the
detector alone on its out-of-fold scores, judged on caption labels as above (one fold seed: the run's), and the
test gallery under the saved policy; writes bench/results/child_detector_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENCODERS = ["efficientnet-lite0", "efficientnet-lite0-tiles", "efficientnet-lite0-tileviews"]
SEEDS = (0, 1)  # fold assignments averaged for the comparison table


def labels_for(dataset):
    from tasks.ratings.aggregate import aggregate_ratings
    from tasks.safety.image_labels import label_images
    from tasks.safety.text_screen import apply_child_safety

    ratings = aggregate_ratings(dataset.expert, dataset.crowd, dataset.texts())
    outcome = apply_child_safety(ratings.pairs, dataset.texts())
    flagged = set(outcome.text_flags.loc[outcome.text_flags["flagged"], "query_id"])
    images = sorted(dataset.image_files["image"])
    return label_images(images, outcome.image_flags, ratings.pairs, flagged)


def features_for(dataset, names: list[str], encoder_id: str, workspace) -> tuple[np.ndarray, float]:
    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder

    folder = dataset.image_files.drop_duplicates("image").set_index("image")["folder"]
    started = time.perf_counter()
    paths = [dataset.data_dir / folder[name] / name for name in names]
    matrix = embed_image_files(paths, get_image_encoder(encoder_id), workspace).matrix
    return matrix, time.perf_counter() - started


def at_recalls(scores: np.ndarray, labels: np.ndarray) -> dict:
    """ROC AUC, and precision and adult images kept at the thresholds that reach recall 0.95 and 0.98."""
    from sklearn.metrics import roc_auc_score

    from tasks.safety.image_detector import operating_point, recall_threshold

    row = {"auc": roc_auc_score(labels, scores)}
    for target in (0.95, 0.98):
        point = operating_point(scores, labels, recall_threshold(scores, labels, target))
        row |= {f"precision@R{target}": point.precision, f"adult_kept@R{target}": point.adults_kept_share}
    return row


def compare(features: np.ndarray, labels: np.ndarray, by_captions: np.ndarray, views: int = 1) -> dict:
    """The detector alone, out of fold, averaged over fold seeds, judged twice: against every label it was
    trained on, and against the caption labels only (images that only a rating calls a child left out: looked
    at one by one on practicum-dev, most of them are adults doing what a child caption describes)."""
    from tasks.safety.image_detector import out_of_fold_scores

    judged = {"all_labels": np.ones(len(labels), dtype=bool), "caption_labels": by_captions | (labels == 0)}
    rows: dict[str, list[dict]] = {name: [] for name in judged}
    for seed in SEEDS:
        scores = out_of_fold_scores(features, labels, 5, seed, views)
        for name, keep in judged.items():
            rows[name].append(at_recalls(scores[keep], labels[keep]))
    return {
        name: {key: round(float(np.mean([r[key] for r in runs])), 3) for key in runs[0]} for name, runs in rows.items()
    }


def test_gallery(dataset, labels, encoder_id: str, workspace, min_captions: int) -> dict:
    """The decision on the test images: thresholds and detector from the train images only."""
    from tasks.safety.image_detector import DetectorParams, fit_child_detector
    from tasks.safety.policy import decide, human_flags, image_evidence

    table = labels.table
    train_names = set(dataset.image_files.loc[dataset.image_files["folder"] == "train_images", "image"])
    train = table[table["labelled"] & table["image"].isin(train_names)]
    fit = fit_child_detector(
        features_for(dataset, train["image"].tolist(), encoder_id, workspace)[0],
        train["child"].to_numpy(int),
        encoder_id,
        DetectorParams(),
    )
    test_names = sorted(dataset.test_images["image"])
    decisions = decide(
        image_evidence(test_names, human_flags(labels)),
        fit.detector.scores(features_for(dataset, test_names, encoder_id, workspace)[0]),
        fit.detector.thresholds,
        min_captions,
    )
    by_captions = decisions["source"].isin(["captions", "ratings"])
    others = ~by_captions
    return {
        "encoder": encoder_id,
        "min_captions": min_captions,
        "thresholds": asdict(fit.detector.thresholds),
        "out_of_fold_at_high_recall": asdict(fit.at(fit.detector.thresholds.high_recall)),
        "out_of_fold_at_confident": asdict(fit.at(fit.detector.thresholds.confident)),
        "test_images": len(decisions),
        "caption_flagged": int(by_captions.sum()),
        "caption_flagged_searchable": int((by_captions & ~decisions["hidden"]).sum()),
        "others": int(others.sum()),
        "others_searchable": int((others & ~decisions["hidden"]).sum()),
        "others_searchable_share": round(float((others & ~decisions["hidden"]).sum() / others.sum()), 3),
    }


def main(data_dir: Path, encoders: list[str], workspace_dir: Path) -> dict:
    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import views_of
    from tasks.workspace import Workspace

    workspace = Workspace(workspace_dir)
    dataset = ingest_dataset(data_dir)
    labels = labels_for(dataset)
    labelled = labels.table[labels.table["labelled"]]
    report: dict = {"labels": asdict(labels.counts), "labelled_images": len(labelled), "detector_alone": {}}
    y = labelled["child"].to_numpy(int)
    by_captions = labelled["by_captions"].to_numpy(dtype=bool)
    for encoder_id in encoders:
        features, seconds = features_for(dataset, labelled["image"].tolist(), encoder_id, workspace)
        views = views_of(encoder_id)
        report["detector_alone"][encoder_id] = compare(features, y, by_captions, views) | {
            "embed_seconds": round(seconds, 1)
        }
        print(encoder_id, report["detector_alone"][encoder_id], flush=True)
    report["test_gallery"] = [test_gallery(dataset, labels, encoders[-1], workspace, n) for n in (1, 2)]
    return report


def pipeline_run(data_dir: Path, run_workspace: Path) -> dict:
    """What a finished pipeline run decided: its detector's out-of-fold scores and its test gallery."""
    import joblib

    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.policy import SafetyPolicy
    from tasks.safety.tuned_detector import is_tuned
    from tasks.workspace import Workspace

    workspace = Workspace(run_workspace)
    dataset = ingest_dataset(data_dir)
    labels = labels_for(dataset)
    policy = SafetyPolicy.load(workspace)
    encoder_id = policy.detector.encoder_id
    report: dict = {
        "run_workspace": str(run_workspace),
        "detector": encoder_id,
        "run_report": json.loads(workspace.detector_path.with_suffix(".json").read_text()),
    }
    if is_tuned(encoder_id):  # the fit cache holds the out-of-fold scores the thresholds were chosen on
        fits = [joblib.load(p) for p in workspace.tuned_detector_dir.glob("fit-*.joblib")]
        fit = next(f for f in fits if f.encoder_id == encoder_id)
        table = labels.table.set_index("image").loc[fit.images]
        judged = table["by_captions"].to_numpy(bool) | (fit.labels == 0)
        report["detector_alone_caption_labels"] = {
            k: round(float(v), 3) for k, v in at_recalls(fit.oof[judged], fit.labels[judged]).items()
        }
        # the linear detector on the same images, labels and folds (the run's seed), for comparison
        from tasks.safety.image_detector import out_of_fold_scores, views_of
        from tasks.safety.policy import DETECTOR_ENCODER

        cache = Workspace(REPO / ".bench-workspace" / "child-detector")
        linear = out_of_fold_scores(
            features_for(dataset, fit.images, DETECTOR_ENCODER, cache)[0],
            fit.labels,
            report["run_report"].get("folds", 5),
            0,
            views_of(DETECTOR_ENCODER),
        )
        report["linear_same_folds_caption_labels"] = {
            k: round(float(v), 3) for k, v in at_recalls(linear[judged], fit.labels[judged]).items()
        }
    test_names = sorted(dataset.test_images["image"])
    paths = [dataset.data_dir / "test_images" / n for n in test_names]
    features = embed_image_files(paths, get_image_encoder(encoder_id), workspace).matrix
    decisions = policy.decide_files(paths, features)
    by_captions = decisions["source"].isin(["captions", "ratings"]).to_numpy()
    hidden = decisions["hidden"].to_numpy(dtype=bool)
    others = ~by_captions
    report["test_gallery"] = {
        "test_images": len(decisions),
        "caption_flagged": int(by_captions.sum()),
        "caption_flagged_searchable": int((by_captions & ~hidden).sum()),
        "others": int(others.sum()),
        "others_searchable": int((others & ~hidden).sum()),
        "others_searchable_share": round(float((others & ~hidden).sum() / others.sum()), 3),
        "hidden_by_detector": sorted(decisions.loc[decisions["source"] == "detector", "image"]),
    }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "practicum-dev")
    parser.add_argument("--encoders", nargs="+", default=ENCODERS, help="image encoder ids; the last one decides")
    parser.add_argument("--workspace", type=Path, default=REPO / ".bench-workspace" / "child-detector")
    parser.add_argument("--run-workspace", type=Path, help="measure this finished pipeline run's decisions instead")
    args = parser.parse_args()
    if args.run_workspace:
        result = pipeline_run(args.data_dir, args.run_workspace)
        out = REPO / "bench" / "results" / "child_detector_pipeline.json"
    else:
        result = main(args.data_dir, args.encoders, args.workspace)
        out = REPO / "bench" / "results" / "child_detector.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
