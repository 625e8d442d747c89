"""Bench: which views of an image give the frozen child detector the best evidence?

Run by hand: `python bench/detector_views.py [DATA_DIR] [--seeds 0 1 2 3]`; writes bench/results/detector_views.json.
About 11 minutes the first time on this 2-core machine (19 crops and one 2x pass of Lite0 per labelled image,
cached under .bench-workspace/detector-views.npz), then about 10 for the classifiers.

The detector's views today (`TILE_BOXES`) are the whole frame and its four quadrants. Here every labelled
practicum-dev image is also seen as:
- five more half-size crops, centred between the quadrants (with the quadrants, a 3x3 grid of half-size tiles at
  quarter strides);
- a 3x3 grid of third-size crops;
- one pass of the whole frame at twice the scale (shorter side 448), its head map averaged over half-size windows
  (the four corners, a 3x3 grid, or every window): the quadrants' scale without cropping.
Each crop is Lite0's pooled 1280-d vector. Every variant is judged as bench/child_detector.py judges the detector:
the pipeline's classifier (`new_classifier`) out of fold, 5 stratified folds per fold seed, on the caption labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

QUADRANTS = [(x, y, x + 0.5, y + 0.5) for y in (0.0, 0.5) for x in (0.0, 0.5)]
HALVES = [(0.25, 0.0, 0.75, 0.5), (0.0, 0.25, 0.5, 0.75), (0.25, 0.25, 0.75, 0.75), (0.5, 0.25, 1.0, 0.75)]
HALVES.append((0.25, 0.5, 0.75, 1.0))
THIRDS = [(x / 3, y / 3, (x + 1) / 3, (y + 1) / 3) for y in range(3) for x in range(3)]
BOXES = [(0.0, 0.0, 1.0, 1.0), *QUADRANTS, *HALVES, *THIRDS]
WHOLE, QUAD = [0], [1, 2, 3, 4]
HALF = list(range(5, 10))
THIRD = list(range(10, 19))
CENTRE = [7]
WINDOWS = ("corners", "grid3", "every")  # half-size windows of the 2x pass's head map


def views_of_images(paths: list[Path]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(images, len(BOXES), 1280) crop features, and the 2x pass's window-pooled features by window set."""
    import torch
    from PIL import Image
    from torch.nn import functional as F

    from tasks.embed.encoders.models import _tile_views
    from tasks.safety.tuned_detector import frozen_network

    net = frozen_network()
    crops = np.zeros((len(paths), len(BOXES), 1280), dtype=np.float32)
    windows = {name: np.zeros((len(paths), 1280), dtype=np.float32) for name in WINDOWS}
    with torch.inference_mode():
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            views = _tile_views(rgb, 224, BOXES)
            for k, view in enumerate(views):
                crops[i, k] = net.features(view[None])[0].numpy()
            x = _tile_views(rgb, 448, [(0.0, 0.0, 1.0, 1.0)])[0][None]
            x = F.relu6(net._bn0(net._conv_stem(x)))
            for block in net._blocks:
                x = block(x)
            head = F.relu6(net._bn1(net._conv_head(x)))
            h, w = head.shape[2:]
            kh, kw = h // 2, w // 2
            strides = {
                "corners": (h - kh, w - kw),
                "grid3": (max(1, (h - kh) // 2), max(1, (w - kw) // 2)),
                "every": (1, 1),
            }
            for name, stride in strides.items():
                windows[name][i] = F.avg_pool2d(head, (kh, kw), stride=stride).amax(dim=(2, 3))[0].numpy()
            if (i + 1) % 100 == 0:
                print(f"views: {i + 1}/{len(paths)} images", flush=True)
    return crops, windows


def cached_views(cache: Path, paths: list[Path]) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    names = np.array([p.name for p in paths])
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["names"]) == list(names):
                return z["crops"], {name: z[name] for name in WINDOWS}, float(z["seconds"])
    started = time.perf_counter()
    crops, windows = views_of_images(paths)
    seconds = time.perf_counter() - started
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, names=names, crops=crops, seconds=seconds, **windows)
    os.replace(tmp, cache)
    return crops, windows, seconds


def variants(crops: np.ndarray, windows: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, int]]:
    """Each variant's feature rows and how many views they hold side by side (1: pooled; more: `ViewMaxClassifier`,
    which scores the pooled vector and each view and keeps the highest, as the linear detector does today)."""

    def pooled(idx: list[int]) -> tuple[np.ndarray, int]:
        return crops[:, idx].max(axis=1), 1

    def side_by_side(idx: list[int]) -> tuple[np.ndarray, int]:
        return crops[:, idx].reshape(len(crops), -1), len(idx)

    whole = crops[:, 0]
    return {
        "whole + quadrants, pooled (`-tiles`, the fine-tune's views)": pooled(WHOLE + QUAD),
        "whole + quadrants, each view scored (`-tileviews`, the linear detector)": side_by_side(WHOLE + QUAD),
        "+ the centre half, pooled": pooled(WHOLE + QUAD + CENTRE),
        "+ five overlapping halves (3x3 grid of halves), pooled": pooled(WHOLE + QUAD + HALF),
        "+ five overlapping halves, each view scored": side_by_side(WHOLE + QUAD + HALF),
        "whole + quadrants + 3x3 thirds, each view scored": side_by_side(WHOLE + QUAD + THIRD),
        "all 19 crops, pooled": pooled(WHOLE + QUAD + HALF + THIRD),
        "scales side by side: whole | quadrants and halves | thirds": (
            np.concatenate([whole, crops[:, QUAD + HALF].max(axis=1), crops[:, THIRD].max(axis=1)], axis=1),
            1,
        ),
        **{
            f"whole + the 2x pass's {name} half-size windows, pooled": (np.maximum(whole, windows[name]), 1)
            for name in WINDOWS
        },
    }


def main(args) -> dict:
    from child_detector import at_recalls, labels_for

    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import out_of_fold_scores

    dataset = ingest_dataset(args.data_dir)
    table = labels_for(dataset).table
    table = table[table["labelled"]].reset_index(drop=True)
    y = table["child"].to_numpy(int)
    judged = table["by_captions"].to_numpy(bool) | (y == 0)
    folder = dict(zip(dataset.image_files["image"], dataset.image_files["folder"], strict=True))
    paths = [args.data_dir / folder[name] / name for name in table["image"]]
    crops, windows, seconds = cached_views(args.cache, paths)
    rows = {}
    for name, (features, views) in variants(crops, windows).items():
        per_seed = [at_recalls(out_of_fold_scores(features, y, 5, s, views)[judged], y[judged]) for s in args.seeds]
        rows[name] = {k: round(float(np.mean([r[k] for r in per_seed])), 3) for k in per_seed[0]}
        rows[name]["adult_kept@R0.95_per_seed"] = [round(float(r["adult_kept@R0.95"]), 3) for r in per_seed]
        print(name, rows[name], flush=True)
    return {
        "command": "python bench/detector_views.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "load_avg_1_5_15": os.getloadavg(),
        "labelled_images": len(y),
        "judged_on_caption_labels": int(judged.sum()),
        "fold_seeds": args.seeds,
        "views_seconds": round(seconds, 1),
        "detector_alone": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "practicum-dev")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="fold assignments")
    parser.add_argument("--cache", type=Path, default=REPO / ".bench-workspace" / "detector-views.npz")
    args = parser.parse_args()
    result = main(args)
    out = REPO / "bench" / "results" / "detector_views.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["detector_alone"], indent=2))
