"""Quality benchmark: the whole pipeline on practicum-dev, every model's metrics, written to bench/results/.

Run by hand (not a test):  .venv/bin/python bench/quality.py [--workspace DIR] [--image-encoder ID]
The workspace keeps the embedding cache between runs, so only the first run pays for embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PRACTICUM = Path(os.environ.get("IMGSEARCH_PRACTICUM_DIR", REPO.parent / "shared" / "data" / "practicum-dev"))
KEYS = ("rmse", "mae", "tau_c", "r1", "r5", "r10", "mrr", "ndcg10")
SAFE_KEYS = ("safe_r1", "safe_mrr", "safe_ndcg10", "val_mrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workspace", type=Path, default=REPO / ".bench-workspace", help="workspace root (cache reused)"
    )
    parser.add_argument("--text-encoder", default="minilm-l6", help="text encoder id")
    parser.add_argument("--image-encoder", default="efficientnet-lite0", help="image encoder id")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality.json", help="JSON output")
    args = parser.parse_args()
    if not (PRACTICUM / "train_dataset.csv").is_file():
        sys.exit(f"practicum-dev not found at {PRACTICUM}; set IMGSEARCH_PRACTICUM_DIR")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from flows.pipeline import RunParams, run_pipeline

    params = RunParams(
        data_dir=PRACTICUM,
        workspace=args.workspace,
        seed=args.seed,
        text_encoder=args.text_encoder,
        image_encoder=args.image_encoder,
    )
    started = time.perf_counter()
    result = run_pipeline(params)
    total = time.perf_counter() - started
    training = result.training
    models = {name: {k: row.get(k) for k in KEYS + SAFE_KEYS} for name, row in training.metrics.items()}
    payload = {
        "dataset": str(PRACTICUM),
        "text_encoder": args.text_encoder,
        "image_encoder": args.image_encoder,
        "seed": args.seed,
        "models": models,
        "best": training.best,
        "study_mlp": "study_mlp",
        "primary_metric": training.primary_metric,
        "promoted": training.promoted,
        "train_seconds": training.train_seconds,
        "fit_seconds": training.fit_seconds,
        "pipeline_seconds": total,
        "split": asdict(training.split),
    }
    best, mlp = models[training.best], models["study_mlp"]
    payload["best_over_study"] = {k: (best[k] / mlp[k] if mlp[k] else None) for k in ("mrr", "r1")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    header = "| model | " + " | ".join(KEYS + SAFE_KEYS) + " |"
    lines = [header, "|---" * (len(KEYS + SAFE_KEYS) + 1) + "|"]
    for name, row in models.items():
        lines.append(
            f"| {name} | " + " | ".join("—" if row[k] is None else f"{row[k]:.3f}" for k in KEYS + SAFE_KEYS) + " |"
        )
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(
        f"# Quality on practicum-dev ({args.text_encoder} + {args.image_encoder}, seed {args.seed})\n\n{table}\n\n"
        f"best: {training.best}; training run {training.train_seconds:.0f} s; whole pipeline {total:.0f} s\n"
    )
    print(table)
    print(
        f"best {training.best}: MRR x{payload['best_over_study']['mrr']:.2f}, "
        f"R@1 x{payload['best_over_study']['r1'] or float('nan'):.2f} "
        f"over the study MLP; training {training.train_seconds:.0f} s; pipeline {total:.0f} s"
    )


if __name__ == "__main__":
    main()
