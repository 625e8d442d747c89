"""Bench: does fine-tuning the last block of Lite0 make the child-image detector keep more adult photos?

Run by hand: `python bench/child_detector_finetune.py [DATA_DIR] [--epochs 4] [--seeds 0 1] [--trained-from 15]
[--ensemble 1] [--out NAME]`; writes bench/results/NAME.json (default child_detector_finetune.json). About 25
minutes on this 2-core machine with the defaults (two fold seeds, 5 folds each; the trunk's activations are cached
under .bench-workspace/finetune-trunk-<from>.npz). `--trained-from 13` trains Lite0's last three blocks (about
2.5 times as long); `--ensemble N` averages N fits per fold (training seeds).

The pipeline's own fine-tuned detector (`tasks/safety/tuned_detector.py`) is this recipe with the defaults.

The detector today is a logistic regression over frozen `efficientnet-lite0-tiles` features: the whole frame
and its four quadrants, each through Lite0, max-pooled over the five views. Looked at one by one, the adult
photos it hides at recall 0.95 are people in motion (footballers, a dancer, a climber): ImageNet features
say "person doing something", not "child". Issue #11 names fine-tuning the last blocks as the lever left.

What is compared, out of fold on the same stratified 5 folds of the labelled practicum-dev images (every label
used for training, judged on caption labels as in bench/child_detector.py):
- `frozen`: the pipeline's own classifier (`new_classifier`) on the frozen pooled tile features;
- `finetuned`: the same five views, Lite0 frozen up to block `--trained-from` (its inputs computed once), then the
  blocks from there, the 1x1 head convolution and a linear layer trained together (AdamW, one-cycle schedule,
  class-weighted BCE, feature maps mirrored at random), max-pooled over the views as above.
Both read the same cached activations, so the only difference is the training.
"""

from __future__ import annotations

import argparse
import copy
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

BASE = "efficientnet-lite0"
VIEWS = 5


def trunk_activations(paths: list[Path], trained_from: int) -> list[list[np.ndarray]]:
    """Each image's tile views run through the frozen stem and blocks [0, trained_from): float16 maps."""
    import torch
    from PIL import Image
    from torch.nn import functional as F

    from tasks.embed.encoders.models import _tile_views

    net = lite0()
    out, start = [], time.perf_counter()
    with torch.inference_mode():
        for i, path in enumerate(paths):
            maps = []
            for view in _tile_views(Image.open(path).convert("RGB"), 224):
                x = F.relu6(net._bn0(net._conv_stem(view[None])))
                for block in net._blocks[:trained_from]:
                    x = block(x)
                maps.append(x[0].half().numpy())
            out.append(maps)
            if (i + 1) % 200 == 0:
                print(f"trunk: {i + 1}/{len(paths)} images, {time.perf_counter() - start:.0f} s", flush=True)
    return out


def lite0():
    from tasks.embed.encoders.efficientnet_lite import fuse_batch_norm, load_efficientnet_lite
    from tasks.embed.encoders.locate import locate_lite_weights

    return fuse_batch_norm(load_efficientnet_lite(BASE, locate_lite_weights(BASE)))


def make_tail(net, mean, std, trained_from: int):
    """Blocks trained_from.., the head convolution and a linear layer; image logit from views max-pooled."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Tail(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*copy.deepcopy(list(net._blocks[trained_from:])))
            self.head = copy.deepcopy(net._conv_head)
            for p in self.parameters():
                p.requires_grad_(True)
            self.fc = nn.Linear(1280, 1)
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def pooled(self, images: list[list[torch.Tensor]]) -> torch.Tensor:
            """(images, 1280): each view's averaged head map, then the maximum over the views."""
            by_shape: dict[tuple, list[tuple[int, int]]] = {}
            for i, views in enumerate(images):
                for j, v in enumerate(views):
                    by_shape.setdefault(tuple(v.shape), []).append((i, j))
            out = torch.zeros(len(images), VIEWS, 1280)
            for where in by_shape.values():
                x = self.blocks(torch.stack([images[i][j] for i, j in where]))
                feats = F.relu6(self.head(x)).mean(dim=(2, 3))
                out = out.index_put((torch.tensor([i for i, _ in where]), torch.tensor([j for _, j in where])), feats)
            return out.amax(dim=1)

        def forward(self, images: list[list[torch.Tensor]]) -> torch.Tensor:
            return self.fc((self.pooled(images) - self.mean) / self.std).squeeze(-1)

    return Tail()


def finetuned_scores(maps, y, train, held_out, args, fold: int) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Held-out scores of each of the `--ensemble` fits (training seeds), the mirrored maps' scores averaged over
    them, and the seconds spent."""
    plain, mirrored, seconds = [], [], 0.0
    for member in range(args.ensemble):
        p, m, s = finetuned_member(maps, y, train, held_out, args, fold, member)
        plain.append(p)
        mirrored.append(m)
        seconds += s
    return plain, np.mean(mirrored, axis=0), seconds


def finetuned_member(maps, y, train, held_out, args, fold: int, member: int) -> tuple[np.ndarray, np.ndarray, float]:
    import torch
    from torch.nn import functional as F

    torch.manual_seed(args.seed * 100 + fold + 1000 * member)
    net = lite0()
    frozen = make_tail(net, torch.zeros(1280), torch.ones(1280), args.trained_from).eval()
    with torch.no_grad():
        pooled = torch.cat([frozen.pooled([maps[i] for i in train[s : s + 32]]) for s in range(0, len(train), 32)])
    model = make_tail(net, pooled.mean(0), pooled.std(0) + 1e-3, args.trained_from)
    body = [p for n, p in model.named_parameters() if not n.startswith("fc")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": args.lr_body}, {"params": model.fc.parameters(), "lr": args.lr_head}],
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = (len(train) + args.batch - 1) // args.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[args.lr_body, args.lr_head], total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    pos_weight = torch.tensor((y[train] == 0).sum() / max(1, (y[train] == 1).sum()), dtype=torch.float32)
    rng = np.random.default_rng(args.seed * 100 + fold + 1000 * member)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order, total = rng.permutation(train), 0.0
        for s in range(0, len(order), args.batch):
            ids = order[s : s + args.batch]
            batch = [[torch.flip(v, dims=[2]) for v in maps[i]] if rng.random() < 0.5 else maps[i] for i in ids]
            target = torch.tensor(y[ids], dtype=torch.float32)
            loss = F.binary_cross_entropy_with_logits(model(batch), target, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(ids)
        print(f"fold {fold} epoch {epoch + 1}: loss {total / len(train):.4f}, {time.perf_counter() - start:.0f} s")
    model.eval()
    with torch.no_grad():
        plain, mirrored = [], []
        for s in range(0, len(held_out), 32):
            images = [maps[i] for i in held_out[s : s + 32]]
            plain.append(torch.sigmoid(model(images)))
            mirrored.append(torch.sigmoid(model([[torch.flip(v, dims=[2]) for v in views] for views in images])))
    return torch.cat(plain).numpy(), torch.cat(mirrored).numpy(), time.perf_counter() - start


def main(args) -> dict:
    import torch
    from child_detector import at_recalls, labels_for
    from sklearn.model_selection import StratifiedKFold

    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import new_classifier

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
    maps_np, trunk_s = cached_trunk(args, [args.data_dir / folder[name] / name for name in table["image"]])
    maps = [[torch.from_numpy(m.astype(np.float32)) for m in views] for views in maps_np]

    frozen_tail = make_tail(lite0(), torch.zeros(1280), torch.ones(1280), args.trained_from).eval()
    with torch.no_grad():
        frozen = torch.cat([frozen_tail.pooled(maps[s : s + 32]) for s in range(0, len(maps), 32)]).numpy()

    per_seed, fit_seconds = [], []
    for seed in args.seeds:
        args.seed = seed
        scores = {name: np.zeros(len(y)) for name in ("frozen", "finetuned", "finetuned_mirrored")}
        members = np.zeros((args.ensemble, len(y)))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
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
    if args.cache.exists():
        with np.load(args.cache, allow_pickle=False) as z:
            if list(z["names"]) == names:
                shapes = z["shapes"]
                flat, offsets = z["flat"], np.concatenate([[0], np.cumsum(np.prod(shapes, axis=1))])
                maps = [flat[offsets[k] : offsets[k + 1]].reshape(shapes[k]) for k in range(len(shapes))]
                return [maps[i * VIEWS : (i + 1) * VIEWS] for i in range(len(names))], float(z["seconds"])
    start = time.perf_counter()
    maps = trunk_activations(paths, args.trained_from)
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
    parser.add_argument("--trained-from", type=int, default=15, help="first trained block (15: Lite0's last)")
    parser.add_argument("--ensemble", type=int, default=1, help="fits per fold, averaged (training seeds)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr-body", type=float, default=1e-4)
    parser.add_argument("--lr-head", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="use only this many labelled images (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spin-waiting on a busy machine)")
    parser.add_argument("--out", default="child_detector_finetune", help="results file stem under bench/results/")
    parser.add_argument(
        "--scores-out", type=Path, default=None, help="write each image's out-of-fold scores to <stem>-seed<N>.csv"
    )
    args = parser.parse_args()
    if args.cache is None:
        args.cache = REPO / ".bench-workspace" / f"finetune-trunk-{args.trained_from}.npz"
    result = main(args)
    out = REPO / "bench" / "results" / (args.out + ("-limit" if args.limit else "") + ".json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["detector_alone"], indent=2))
