"""Caption neighbours of the two-tower: a grid over how many, what weight and what temperature, on practicum-dev folds.

Run by hand (not a test):
  .venv/bin/python bench/caption_neighbours.py [--seeds 0,1] [--workspace DIR]

For every seed and each of 5 group folds (the folds of `bench/quality.py`), the default two-tower is fitted once on
the other folds; the grid then only changes how its gallery vectors are looked up (`neighbours`, `neighbour_weight`,
`neighbour_temperature`: attributes of the fitted model, read by `embed_images`), so every setting ranks with the
same networks. Weight 0 is the network alone; a weight of 1e6 is the caption lookup alone. `--memory rated` also
puts every rated match (target >= 0.67) into the memory beside the own captions. Each setting is scored on the
fixed test set (100 queries x 100 images) and on the fold's held-out images (their own captions as queries). Writes
`bench/results/caption_neighbours[-<memory>].json` and `.md`: every setting's means over the fold models, sorted
by fold MRR (the choice should follow the folds, not the one test set).
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


def rated_memory(model, train):
    """The model's memory plus every rated match of the training split (its text as the model embeds it)."""
    from tasks.training.models.two_tower import CaptionMemory, unit

    good = train.target >= 0.67
    own = model.memory
    return CaptionMemory(
        image=np.vstack([own.image, unit(model._image_in(train.image[good]))]),
        text=np.vstack([own.text, unit(model.embed_texts(train.text[good]))]),
        groups=np.concatenate([own.groups, np.full(int(good.sum()), -1)]),
    )


def measure(features: dict, seeds: list[int], memory: str) -> tuple[dict[tuple, list[list[float]]], list[int]]:
    """Per setting, per fold model: [test R@1, test MRR, fold R@1, fold MRR]; and each fold model's memory size."""
    from tasks.training.data import image_folds
    from tasks.training.metrics import retrieval_metrics
    from tasks.training.models.two_tower import TwoTowerModel

    pairs = features["pairs"]
    grid = list(itertools.product(NEIGHBOURS, WEIGHTS, TEMPERATURES))
    scores: dict[tuple, list[list[float]]] = {setting: [] for setting in grid}
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
            queries = [model.embed_texts(rs.text) for rs in sets]
            for k, weight, temperature in grid:
                model.neighbours, model.neighbour_weight, model.neighbour_temperature = k, weight, temperature
                row: list[float] = []
                for rs, q in zip(sets, queries, strict=True):
                    m = retrieval_metrics(q @ model.embed_images(rs.image).T, rs.relevant)
                    row += [m["r1"], m["mrr"]]
                scores[(k, weight, temperature)].append(row)
            alone = scores[(NEIGHBOURS[0], 0.0, TEMPERATURES[0])][-1]
            print(f"seed {seed} fold {fold}: network alone test MRR {alone[1]:.3f}, fold MRR {alone[3]:.3f}")
    return scores, memory_rows


def summarise(scores: dict[tuple, list[list[float]]]) -> list[dict]:
    """Each setting's means over the fold models (the network alone once), best fold MRR first."""
    rows = []
    for (k, weight, temperature), values in scores.items():
        if weight == 0.0 and (k, temperature) != (NEIGHBOURS[0], TEMPERATURES[0]):
            continue  # the network alone: one row, whatever k and temperature
        mean = np.mean(values, axis=0)
        rows.append(
            {
                "neighbours": k,
                "weight": weight,
                "temperature": temperature,
                "test_r1": float(mean[0]),
                "test_mrr": float(mean[1]),
                "val_r1": float(mean[2]),
                "val_mrr": float(mean[3]),
                "folds": len(values),
            }
        )
    return sorted(rows, key=lambda r: -r["val_mrr"])


def label(r: dict) -> str:
    if r["weight"] == 0.0:
        return "network alone"
    if r["weight"] >= 1e6:
        return f"lookup alone, k {r['neighbours']}, T {r['temperature']}"
    return f"k {r['neighbours']}, weight {r['weight']}, T {r['temperature']}"


def table(rows: list[dict], memory: str, seeds: str) -> str:
    alone = [r for r in rows if r["weight"] == 0.0]
    lookup = [r for r in rows if r["weight"] >= 1e6][:3]
    lines = [
        f"# Caption neighbours, memory '{memory}', 5 folds x seeds {seeds} (means over fold models)\n",
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
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    args = parser.parse_args()
    if not (quality.PRACTICUM / "train_dataset.csv").is_file():
        sys.exit(f"practicum-dev not found at {quality.PRACTICUM}; set IMGSEARCH_PRACTICUM_DIR")
    quality._env()
    from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

    features = quality.load_features(quality.PRACTICUM, args.workspace, DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER)
    started = time.perf_counter()
    scores, memory_rows = measure(features, [int(s) for s in args.seeds.split(",")], args.memory)
    rows = summarise(scores)
    out = args.out or REPO / "bench" / "results" / f"caption_neighbours{'' if args.memory == 'own' else '-rated'}.json"
    payload = {
        "dataset": str(quality.PRACTICUM),
        "encoders": [DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER],
        "seeds": args.seeds,
        "memory": args.memory,
        "seconds": round(time.perf_counter() - started, 1),
        "memory_captions": memory_rows,  # per fold model
        "safe_test_queries": int(features["test_queries"]["safe"].sum()),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    text = table(rows, args.memory, args.seeds)
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
