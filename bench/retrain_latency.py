"""Time from a good ratings file landing in the inbox to a promotion decision, with a warm embedding cache.

    python bench/retrain_latency.py [DATA_DIR] [--workspace DIR] [--models ridge,two_tower] [--rows 200]

Runs the flows directly (no deployment server): a warm-up retrain (fills the embedding cache and makes a
champion), then drops an expert batch re-rating `--rows` training pairs, and times ingest_ratings +
retrain. Writes bench/results/retrain_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    from flows.operations import InboxParams, RetrainParams, ingest_ratings, retrain
    from tasks.workspace import Workspace, write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, nargs="?", default=REPO.parent / "shared" / "data" / "practicum-dev")
    parser.add_argument("--workspace", type=Path, default=None, help="Workspace root (default: a new temporary folder)")
    parser.add_argument("--models", default="ridge,two_tower", help="Model kinds to fit")
    parser.add_argument("--rows", type=int, default=200, help="Training pairs the new expert batch re-rates")
    parser.add_argument("--text-encoder", default="minilm-l6")
    parser.add_argument("--image-encoder", default="efficientnet-lite0")
    args = parser.parse_args(argv)

    root = args.workspace or Path(tempfile.mkdtemp(prefix="imgsearch-latency-"))
    workspace = Workspace(root)
    params = RetrainParams(
        data_dir=args.data_dir,
        workspace=root,
        text_encoder=args.text_encoder,
        image_encoder=args.image_encoder,
        training={"models": args.models.split(",")},
    )
    started = time.perf_counter()
    retrain(params)  # warm-up: fills the embedding cache and makes a champion
    warm_seconds = time.perf_counter() - started

    import pandas as pd

    train = pd.read_csv(args.data_dir / "train_dataset.csv").drop_duplicates(["image", "query_id"])
    pairs = train.sample(n=min(args.rows, len(train)), random_state=0)
    # Experts who agree the caption fits: a real change to the targets, not a no-op batch.
    lines = "".join(f"{r.image}\t{r.query_id}\t4\t4\t3\n" for r in pairs.itertuples())
    tmp = workspace.inbox / ".expert_latency.tsv.part"
    tmp.write_text(lines)

    dropped = time.perf_counter()
    tmp.rename(workspace.inbox / "expert_latency.tsv")  # the file appears atomically, like a finished upload
    inbox = ingest_ratings(InboxParams(data_dir=args.data_dir, workspace=root))
    ingested = time.perf_counter()
    result = retrain(params)
    done = time.perf_counter()

    training = result.run.training
    figures = {
        "data_dir": str(args.data_dir),
        "workspace": str(root),
        "encoders": [args.text_encoder, args.image_encoder],
        "models": args.models.split(","),
        "rows_in_batch": inbox.merged_rows,
        "warm_up_seconds": round(warm_seconds, 1),
        "ingest_ratings_seconds": round(ingested - dropped, 1),
        "retrain_seconds": round(done - ingested, 1),
        "drop_to_decision_seconds": round(done - dropped, 1),
        "cache": {kind: asdict(report) for kind, report in result.run.embeddings.cache.items()},
        "promoted": training.promoted,
        "reason": training.reason,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    write_json_atomic(REPO / "bench" / "results" / "retrain_latency.json", figures)
    print(json.dumps(figures, indent=2))  # noqa: T201 - command-line output
    return figures


if __name__ == "__main__":
    main()
