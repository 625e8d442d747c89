"""Bench: does fine-tuning the end of Lite0 make the child-image detector keep more adult photos?

Run by hand: `python bench/child_detector_finetune.py [DATA_DIR] [--epochs 4] [--seeds 0 1] [--trained-from 16]
[--lr-body 1e-3] [--ensemble 1] [--folds 5] [--views tiles] [--no-bf16] [--threads 1] [--out NAME]`; writes
bench/results/NAME.json (default child_detector_finetune.json). The defaults are the pipeline's recipe
(`FinetuneParams`): the 1x1 head convolution and the linear layer trained (`--trained-from 16`), 4 epochs. With
`--threads 2` on this 2-core machine: about 2.5 minutes (10 fits of 11-15 s in bfloat16), plus about 1.5 minutes
the first time for the trunk's activations, which are cached under .bench-workspace/finetune-trunk-<from>.npz.
`--trained-from 15` also trains Lite0's last MBConv block (fits of about 36 s), `--trained-from 13` its last
three (about 2.5 times that); `--ensemble N` averages N fits per fold (training seeds); `--folds` sets the folds of
the out-of-fold scores; `--views grid` trains on ten views instead of five (the whole frame, its quadrants and
five half-size tiles between them, as in bench/detector_views.py). Every fit is the pipeline's own `fit_tail`.

The pipeline's own fine-tuned detector (`tasks/safety/tuned_detector.py`) is this recipe with the defaults.

The frozen detector is a logistic regression over `efficientnet-lite0-tiles` features: the whole frame
and its four quadrants, each through Lite0, max-pooled over the five views. Looked at one by one, the adult
photos it hides at recall 0.95 are people in motion (footballers, a dancer, a climber): ImageNet features
say "person doing something", not "child". Issue #11 names fine-tuning the last blocks as the lever left.

What is compared, out of fold on the same stratified 5 folds of the labelled practicum-dev images (every label
used for training, judged on caption labels as in bench/child_detector.py):
- `frozen`: the pipeline's own classifier (`new_classifier`) on the frozen pooled tile features;
- `finetuned`: the same five views, Lite0 frozen up to block `--trained-from` (its inputs computed once), then the
  blocks from there (none with 16), the 1x1 head convolution and a linear layer trained together (AdamW,
  one-cycle schedule, class-weighted BCE, feature maps mirrored at random), max-pooled over the views as above.
Both read the same cached activations, so the only difference is the training.
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

# The views each image is seen as: the pipeline's five, or ten (bench/detector_views.py's 3x3 grid of halves).
VIEW_SETS = ("tiles", "grid")


def boxes_of(views: str) -> list[tuple[float, float, float, float]]:
    from detector_views import HALVES

    from tasks.embed.encoders.models import TILE_BOXES

    return list(TILE_BOXES) + (list(HALVES) if views == "grid" else [])


def finetuned_scores(maps, y, train, held_out, args, fold: int) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Held-out scores of each of the `--ensemble` fits (training seeds), the mirrored maps' scores averaged over
    them, and the seconds spent. Each fit is the pipeline's own (`fit_tail`)."""
    from tasks.safety.tuned_detector import FinetuneParams, fit_tail, tail_scores

    params = FinetuneParams(
        trained_from=args.trained_from,
        epochs=args.epochs,
        lr_body=args.lr_body,
        lr_head=args.lr_head,
        weight_decay=args.weight_decay,
        batch=args.batch,
        bf16=args.bf16,
    )
    held = [maps[i] for i in held_out]
    mirror = [[np.ascontiguousarray(m[:, :, ::-1]) for m in views] for views in held]
    plain, mirrored, start = [], [], time.perf_counter()
    for member in range(args.ensemble):
        seed = args.seed * 100 + fold + 1000 * member
        tail = fit_tail([maps[i] for i in train], y[train], params, seed, log=lambda s: print(f"fold {fold}: {s}"))
        plain.append(tail_scores(tail, held))
        mirrored.append(tail_scores(tail, mirror))
    return plain, np.mean(mirrored, axis=0), time.perf_counter() - start


def main(args) -> dict:
    import torch
    from child_detector import at_recalls, labels_for
    from sklearn.model_selection import StratifiedKFold

    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import new_classifier
    from tasks.safety.tuned_detector import _tail_module, frozen_network, tail_features

    torch.set_num_threads(args.threads)
    dataset = ingest_dataset(args.data_dir)
    labels = labels_for(dataset)
    table = labels.table[labels.table["labelled"]].reset_index(drop=True)
    if args.limit:  # a quick check of the code path, not a measurement
        table = table.sample(n=min(args.limit, len(table)), random_state=0).reset_index(drop=True)
        args.cache = args.cache.with_name(args.cache.stem + "-limit.npz")
    y = table["child"].to_numpy(int)
    judged = table["by_captions"].to_numpy(bool) | (y == 0)
    folder = dict(zip(dataset.image_files["image"], dataset.image_files["folder"], strict=True))
    maps, trunk_s = cached_trunk(args, [args.data_dir / folder[name] / name for name in table["image"]])
    frozen = tail_features(_tail_module(frozen_network(), args.trained_from, torch.zeros(1), torch.ones(1)), maps)
    frozen = frozen.reshape(len(maps), len(boxes_of(args.views)), -1).max(axis=1)

    per_seed, fit_seconds = [], []
    for seed in args.seeds:
        args.seed = seed
        scores = {name: np.zeros(len(y)) for name in ("frozen", "finetuned", "finetuned_mirrored")}
        members = np.zeros((args.ensemble, len(y)))
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
        for fold, (train, held_out) in enumerate(folds):
            model = new_classifier(seed).fit(frozen[train].astype(np.float64), y[train])
            scores["frozen"][held_out] = model.predict_proba(frozen[held_out].astype(np.float64))[:, 1]
            tuned, mirrored, seconds = finetuned_scores(maps, y, train, held_out, args, fold)
            members[:, held_out] = tuned
            scores["finetuned"][held_out], scores["finetuned_mirrored"][held_out] = np.mean(tuned, axis=0), mirrored
            fit_seconds.append(round(seconds, 1))
        # test-time mirroring: the mean of the score and the score of the mirrored maps; and the two detectors'
        # probabilities averaged (both are fitted with balanced classes, so their scales are alike)
        scores["finetuned+mirror"] = (scores.pop("finetuned_mirrored") + scores["finetuned"]) / 2
        scores["frozen+finetuned"] = (scores["frozen"] + scores["finetuned"]) / 2
        # the ensemble's curve from the same run: the first k fits of each fold averaged
        for k in range(1, args.ensemble):
            scores[f"finetuned_first_{k}"] = members[:k].mean(axis=0)
        if args.scores_out:
            write_scores(args.scores_out, seed, table, judged, scores)
        per_seed.append(
            {
                name: {k: round(float(v), 3) for k, v in at_recalls(s[judged], y[judged]).items()}
                for name, s in scores.items()
            }
        )
        print(f"seed {seed}: {json.dumps(per_seed[-1])}", flush=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "seed"}
    return {
        "command": "python bench/child_detector_finetune.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "load_avg_1_5_15": os.getloadavg(),
        "labelled_images": len(y),
        "judged_on_caption_labels": int(judged.sum()),
        "settings": settings,
        "trunk_seconds": round(trunk_s, 1),
        "finetune_seconds_per_fold": fit_seconds,
        "detector_alone_per_seed": dict(zip(map(str, args.seeds), per_seed, strict=True)),
        "detector_alone": {
            name: {k: round(float(np.mean([r[name][k] for r in per_seed])), 3) for k in per_seed[0][name]}
            for name in per_seed[0]
        },
    }


def write_scores(path: Path, seed: int, table, judged: np.ndarray, scores: dict[str, np.ndarray]) -> None:
    """Each labelled image's out-of-fold scores, to look at the errors (kept out of the repo: it names the data's
    images). One CSV per fold seed: `<path stem>-seed<seed>.csv`."""
    frame = table[["image", "child", "by_captions"]].assign(judged=judged, **scores)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path.with_name(f"{path.stem}-seed{seed}.csv"), index=False)


def cached_trunk(args, paths: list[Path]) -> tuple[list[list[np.ndarray]], float]:
    """The trunk's activations, from `--cache` when it holds these images (a rerun then embeds nothing)."""
    names = [p.name for p in paths]
    per_image = len(boxes_of(args.views))
    if args.cache.exists():
        with np.load(args.cache, allow_pickle=False) as z:
            if list(z["names"]) == names:
                shapes = z["shapes"]
                flat, offsets = z["flat"], np.concatenate([[0], np.cumsum(np.prod(shapes, axis=1))])
                maps = [flat[offsets[k] : offsets[k + 1]].reshape(shapes[k]) for k in range(len(shapes))]
                return [maps[i * per_image : (i + 1) * per_image] for i in range(len(names))], float(z["seconds"])
    from tasks.safety.tuned_detector import trunk_maps

    start = time.perf_counter()
    maps = trunk_maps(
        paths,
        args.trained_from,
        progress=lambda i: i % 200 or print(f"trunk: {i}/{len(paths)} images"),
        boxes=boxes_of(args.views),
    )
    seconds = time.perf_counter() - start
    views = [m for per_image in maps for m in per_image]
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.cache.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        names=np.array(names),
        shapes=np.array([m.shape for m in views]),
        flat=np.concatenate([m.ravel() for m in views]),
        seconds=seconds,
    )
    os.replace(tmp, args.cache)
    return maps, seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "practicum-dev")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="fold assignments (and training seeds)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="trunk activations (default .bench-workspace/finetune-trunk-<from>.npz)",
    )
    from tasks.safety.tuned_detector import FinetuneParams

    pipeline = FinetuneParams()  # the defaults are the pipeline's recipe
    parser.add_argument(
        "--trained-from",
        type=int,
        default=pipeline.trained_from,
        help="first trained block (15: Lite0's last; 16: the head convolution only, the pipeline's)",
    )
    parser.add_argument("--ensemble", type=int, default=1, help="fits per fold, averaged (training seeds)")
    parser.add_argument("--epochs", type=int, default=pipeline.epochs)
    parser.add_argument("--lr-body", type=float, default=pipeline.lr_body, help="the convolutions' learning rate")
    parser.add_argument("--lr-head", type=float, default=pipeline.lr_head, help="learning rate of the linear layer")
    parser.add_argument("--weight-decay", type=float, default=pipeline.weight_decay)
    parser.add_argument("--batch", type=int, default=pipeline.batch)
    parser.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold scores (the pipeline's: 5)")
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=True, help="train with bfloat16 (the default)"
    )
    parser.add_argument("--views", choices=VIEW_SETS, default="tiles", help="five views (the pipeline's) or ten (grid)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many labelled images (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spin-waiting on a busy machine)")
    parser.add_argument("--out", default="child_detector_finetune", help="results file stem under bench/results/")
    parser.add_argument(
        "--scores-out", type=Path, default=None, help="write each image's out-of-fold scores to <stem>-seed<N>.csv"
    )
    args = parser.parse_args()
    if args.cache is None:
        suffix = "" if args.views == "tiles" else f"-{args.views}"
        args.cache = REPO / ".bench-workspace" / f"finetune-trunk-{args.trained_from}{suffix}.npz"
    result = main(args)
    out = REPO / "bench" / "results" / (args.out + ("-limit" if args.limit else "") + ".json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["detector_alone"], indent=2))
