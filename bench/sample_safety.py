"""Bench: the image safety decision on the embedded sample, seeds 0-4, against the generator's ground truth.

Run by hand: `python bench/sample_safety.py [--encoders ID ...] [--seeds 0 1 2 3 4]`; writes
bench/results/sample_safety.json.

For each detector encoder and seed it takes the pipeline's own steps on the sample's training images (labels
from captions and ratings, out-of-fold scores, thresholds, the final detector), then decides every image as
search and the training set do (a labelled training image by its out-of-fold score, any other by the final
detector, at the threshold its captions allow) and counts, from the generator's truth, the child images left
searchable and the adult images hidden. `tests/safety/test_sample_ground_truth.py` checks the same through a
real pipeline run and every serving path; this bench compares detectors quickly. Features come through an
embedding cache (`--workspace`), so a rerun embeds nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENCODERS = ["efficientnet-lite0-tiles", "efficientnet-lite0-tileviews"]


def decide_sample(data_dir: Path, children: set[str], encoder_id: str, seed: int, workspace) -> dict:
    from child_detector import labels_for

    from tasks.embed.cache import embed_image_files
    from tasks.embed.encoders.registry import get_image_encoder
    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import DetectorParams, fit_child_detector
    from tasks.safety.policy import DEFAULT_MIN_CAPTIONS, decide, human_flags, image_evidence

    dataset = ingest_dataset(data_dir)
    labels = labels_for(dataset)
    table = labels.table
    folder = dataset.image_files.drop_duplicates("image").set_index("image")["folder"]
    train = table[table["image"].isin(set(folder[folder == "train_images"].index)) & table["labelled"]]
    names = sorted(folder.index)
    features = embed_image_files([data_dir / folder[n] / n for n in names], get_image_encoder(encoder_id), workspace)
    row = {name: k for k, name in enumerate(names)}
    fit = fit_child_detector(
        features.matrix[[row[n] for n in train["image"]]],
        train["child"].to_numpy(int),
        encoder_id,
        DetectorParams(seed=seed),
    )
    scores = fit.detector.scores(features.matrix)
    out_of_fold = dict(zip(train["image"], fit.oof_scores, strict=True))
    scores = np.array([out_of_fold.get(n, s) for n, s in zip(names, scores, strict=True)])
    decisions = decide(
        image_evidence(names, human_flags(labels)), scores, fit.detector.thresholds, DEFAULT_MIN_CAPTIONS
    )
    child = decisions["image"].isin(children).to_numpy()
    hidden = decisions["hidden"].to_numpy(dtype=bool)
    shown = decisions.loc[child & ~hidden]
    return {
        "seed": seed,
        "children": int(child.sum()),
        "children_shown": int(len(shown)),
        "shown": [
            f"{n} (score {s:.3f} < {t:.3f})"
            for n, s, t in zip(shown["image"], shown["score"], shown["threshold"], strict=True)
        ],
        "adults": int((~child).sum()),
        "adults_hidden": int((~child & hidden).sum()),
        "thresholds": {k: round(v, 3) for k, v in asdict(fit.detector.thresholds).items()},
    }


def main(encoders: list[str], seeds: list[int], workspace_dir: Path) -> dict:
    from tasks.ingest.sample import generate_sample
    from tasks.workspace import Workspace

    workspace = Workspace(workspace_dir)
    report: dict = {"command": "python bench/sample_safety.py " + " ".join(sys.argv[1:]), "detectors": {}}
    with tempfile.TemporaryDirectory() as tmp:
        samples = {}
        for seed in seeds:
            truth = generate_sample(Path(tmp) / f"seed{seed}", seed=seed)
            samples[seed] = (Path(tmp) / f"seed{seed}", set(truth.child_images))
        for encoder_id in encoders:
            rows = [
                decide_sample(data_dir, children, encoder_id, seed, workspace)
                for seed, (data_dir, children) in samples.items()
            ]
            report["detectors"][encoder_id] = {
                "children_shown": sum(r["children_shown"] for r in rows),
                "adults_hidden": sum(r["adults_hidden"] for r in rows),
                "adults": sum(r["adults"] for r in rows),
                "seeds": rows,
            }
            print(encoder_id, json.dumps(report["detectors"][encoder_id]), flush=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=ENCODERS, help="detector image encoder ids")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--workspace", type=Path, default=REPO / ".bench-workspace" / "sample-safety")
    args = parser.parse_args()
    result = main(args.encoders, args.seeds, args.workspace)
    out = REPO / "bench" / "results" / "sample_safety.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
