"""Caption neighbours of the two-tower: a grid over how many, what weight and what temperature, on practicum-dev folds.

Run by hand (not a test):
  .venv/bin/python bench/caption_neighbours.py [--seeds 0,1] [--workspace DIR] [--grid neighbours|hub]

For every seed and each of 5 group folds (the folds of `bench/quality.py`), the default two-tower is fitted once on
the other folds; the grid then only changes how its gallery vectors are looked up (`neighbours`, `neighbour_weight`,
`neighbour_temperature`: attributes of the fitted model, read by `embed_images`), so every setting ranks with the
same networks. Weight 0 is the network alone; a weight of 1e6 is the caption lookup alone. `--memory rated` also
puts every rated match (target >= 0.67) into the memory beside the own captions. Each setting is scored on the
fixed test set (100 queries x 100 images) and on the fold's held-out images (their own captions as queries). Writes
`bench/results/caption_neighbours[-<memory>].json` and `.md`: every setting's means over the fold models, sorted
by fold MRR (the choice should follow the folds, not the one test set). The neighbour grid runs without the
hubness term (`hub_penalty` 0, as it was measured before the term existed).

`--grid hub` instead keeps the default neighbours and varies the hubness term (`hub_neighbours`, `hub_penalty`:
also read at lookup time); penalty 0 is the model without it. Writes `caption_neighbours-hub.{json,md}`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (bench/quality.py: its loading of the pipeline's inputs and its fold protocol)

REPO = quality.REPO
NEIGHBOURS = (10, 20, 30, 50, 75, 100, 200, 100_000)  # the last: every training caption
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 1e6)
TEMPERATURES = (0.1, 0.15, 0.2, 0.3, 0.5)
HUB_NEIGHBOURS = (5, 10, 20, 50, 100)
HUB_PENALTIES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def settings(grid: str) -> list[dict]:
    """The model attributes each setting of the grid assigns (all of them read at lookup time, not in training)."""
    if grid == "hub":
        return [
            {"hub_neighbours": k, "hub_penalty": penalty}
            for k, penalty in itertools.product(HUB_NEIGHBOURS, HUB_PENALTIES)
        ]
    return [
        {"neighbours": k, "neighbour_weight": weight, "neighbour_temperature": temperature, "hub_penalty": 0.0}
        for k, weight, temperature in itertools.product(NEIGHBOURS, WEIGHTS, TEMPERATURES)
    ]


def rated_memory(model, train):
    """The model's memory plus every rated match of the training split (its text as the model embeds it)."""
    from tasks.training.models.two_tower import CaptionMemory, unit

    good = train.target >= 0.67
    own = model.memory
    return CaptionMemory(
        image=np.vstack([own.image, unit(model._image_in(train.image[good]))]),
        text=np.vstack([own.text, unit(model._text_vectors(train.text[good]))]),
        groups=np.concatenate([own.groups, np.full(int(good.sum()), -1)]),
    )


def measure(
    features: dict, seeds: list[int], memory: str, grid: list[dict]
) -> tuple[dict[tuple, list[list[float]]], list[int]]:
    """Per setting (its items), per fold model: [test R@1, test MRR, fold R@1, fold MRR]; and each fold model's
    memory size."""
    from tasks.training.data import image_folds
    from tasks.training.metrics import retrieval_metrics
    from tasks.training.models.two_tower import TwoTowerModel

    pairs = features["pairs"]
    scores: dict[tuple, list[list[float]]] = {tuple(setting.items()): [] for setting in grid}
    memory_rows: list[int] = []
    for seed in seeds:
        for fold, held in enumerate(image_folds(pairs["image"].to_numpy(), 5, seed)):
            train, eval_data = quality.fold_datasets(features, held, seed)
            model = TwoTowerModel().fit(train, seed)
            if memory == "rated":
                model.memory = rated_memory(model, train)
            assert model.memory is not None and eval_data.test_retrieval is not None
            memory_rows.append(len(model.memory.text))
            sets = (eval_data.test_retrieval, eval_data.val_retrieval)
            for setting in grid:
                for name, value in setting.items():
                    setattr(model, name, value)
                row: list[float] = []
                for rs in sets:  # the query vectors too: with the hubness term they end in a 1
                    m = retrieval_metrics(model.embed_texts(rs.text) @ model.embed_images(rs.image).T, rs.relevant)
                    row += [m["r1"], m["mrr"]]
                scores[tuple(setting.items())].append(row)
            first = scores[tuple(grid[0].items())][-1]
            print(f"seed {seed} fold {fold}: {label(grid[0])}: test MRR {first[1]:.3f}, fold MRR {first[3]:.3f}")
    return scores, memory_rows


def summarise(scores: dict[tuple, list[list[float]]]) -> list[dict]:
    """Each setting's means over the fold models (a setting that is off, once), best fold MRR first."""
    rows, off_seen = [], False
    for items, values in scores.items():
        setting = dict(items)
        if is_off(setting):
            if off_seen:
                continue  # the network alone (or without the term): one row, whatever the other values
            off_seen = True
        rows.append(mean_row(setting, values))
    return sorted(rows, key=lambda r: -r["val_mrr"])


def mean_row(setting: dict, values: list[list[float]]) -> dict:
    """A setting with its means over the fold models of [test R@1, test MRR, fold R@1, fold MRR]."""
    mean = np.mean(values, axis=0)
    return {
        **setting,
        "test_r1": float(mean[0]),
        "test_mrr": float(mean[1]),
        "val_r1": float(mean[2]),
        "val_mrr": float(mean[3]),
        "folds": len(values),
    }


def is_off(setting: dict) -> bool:
    """The setting that turns the grid's lever off: weight 0 (the network alone), or hubness penalty 0."""
    return setting.get("neighbour_weight", 1.0) == 0.0 or ("hub_neighbours" in setting and setting["hub_penalty"] == 0)


def label(r: dict) -> str:
    if "hub_neighbours" in r:
        return "no hubness term" if is_off(r) else f"hubness k {r['hub_neighbours']}, penalty {r['hub_penalty']}"
    if is_off(r):
        return "network alone"
    if r["neighbour_weight"] >= 1e6:
        return f"lookup alone, k {r['neighbours']}, T {r['neighbour_temperature']}"
    return f"k {r['neighbours']}, weight {r['neighbour_weight']}, T {r['neighbour_temperature']}"


def table(rows: list[dict], memory: str, seeds: str, grid: str) -> str:
    alone = [r for r in rows if is_off(r)]
    lookup = [r for r in rows if r.get("neighbour_weight", 0) >= 1e6][:3]
    what = "Hubness term (default caption neighbours)" if grid == "hub" else "Caption neighbours"
    lines = [
        f"# {what}, memory '{memory}', 5 folds x seeds {seeds} (means over fold models)\n",
        "| setting | test R@1 | test MRR | fold R@1 | fold MRR |",
        "|---|---|---|---|---|",
    ]
    for r in rows[:15] + lookup + alone:
        lines.append(
            f"| {label(r)} | {r['test_r1']:.3f} | {r['test_mrr']:.3f} | {r['val_r1']:.3f} | {r['val_mrr']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=REPO / ".bench-workspace", help="workspace (cache reused)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated fold seeds")
    parser.add_argument("--memory", choices=("own", "rated"), default="own", help="what the memory holds")
    parser.add_argument(
        "--grid", choices=("neighbours", "hub"), default="neighbours", help="which lookup-time settings to vary"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    args = parser.parse_args()
    if not (quality.PRACTICUM / "train_dataset.csv").is_file():
        sys.exit(f"practicum-dev not found at {quality.PRACTICUM}; set IMGSEARCH_PRACTICUM_DIR")
    quality._env()
    from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

    features = quality.load_features(quality.PRACTICUM, args.workspace, DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER)
    started = time.perf_counter()
    scores, memory_rows = measure(features, [int(s) for s in args.seeds.split(",")], args.memory, settings(args.grid))
    rows = summarise(scores)
    suffix = ("" if args.memory == "own" else "-rated") + ("" if args.grid == "neighbours" else f"-{args.grid}")
    out = args.out or REPO / "bench" / "results" / f"caption_neighbours{suffix}.json"
    payload = {
        "dataset": str(quality.PRACTICUM),
        "encoders": [DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER],
        "seeds": args.seeds,
        "memory": args.memory,
        "grid": args.grid,
        "seconds": round(time.perf_counter() - started, 1),
        "memory_captions": memory_rows,  # per fold model
        "safe_test_queries": int(features["test_queries"]["safe"].sum()),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    text = table(rows, args.memory, args.seeds, args.grid)
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
