"""Bench: do the fine-tuned detector's steps run faster as single-thread worker processes than on two threads?

Run by hand: `python bench/finetune_parallel.py [DATA_DIR] [--images 100] [--repeats 2]`; prints the timings and
writes bench/results/finetune_parallel.json. On practicum-dev it takes about 8 minutes, plus about 2.5 minutes the
first time for the trunk maps of every labelled image (cached in .bench-workspace/finetune-trunk-15.npz, shared
with bench/child_detector_finetune.py).

What it times, in one run (so the machine's load is alike), `--repeats` times:
- the trunk maps of `--images` images: one process on two threads, and two single-thread processes on halves;
- one fine-tune fit (the pipeline's `fit_tail`) on 80 % of the labelled images on two threads and on one thread,
  and two such fits side by side in two single-thread processes (`tasks.parallel.side_by_side`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def timed_trunk(paths: list[Path], threads: int) -> float:
    import torch

    from tasks.safety.tuned_detector import trunk_maps

    torch.set_num_threads(threads)
    started = time.perf_counter()
    trunk_maps(paths, 15)
    return time.perf_counter() - started


def timed_fit(maps, labels, threads: int, seed: int) -> float:
    import torch

    from tasks.safety.tuned_detector import FinetuneParams, fit_tail

    torch.set_num_threads(threads)
    started = time.perf_counter()
    fit_tail(maps, labels, FinetuneParams(), seed)
    return time.perf_counter() - started


def wall(calls) -> tuple[float, list[float]]:
    from tasks.parallel import side_by_side

    started = time.perf_counter()
    inner = list(side_by_side(calls, workers=2))
    return time.perf_counter() - started, inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "practicum-dev")
    parser.add_argument("--images", type=int, default=100, help="images of the trunk-map timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / ".bench-workspace" / "finetune-trunk-15.npz")
    args = parser.parse_args()
    from child_detector import labels_for
    from child_detector_finetune import cached_trunk

    from tasks.ingest.dataset import ingest_dataset

    dataset = ingest_dataset(args.data_dir)
    table = labels_for(dataset).table
    table = table[table["labelled"]].reset_index(drop=True)
    labels = table["child"].to_numpy(int)
    folder = dict(zip(dataset.image_files["image"], dataset.image_files["folder"], strict=True))
    paths = [args.data_dir / folder[name] / name for name in table["image"]]
    maps, _ = cached_trunk(argparse.Namespace(cache=args.cache, trained_from=15), paths)
    n = int(len(labels) * 0.8)
    part, part_labels, sample = maps[:n], labels[:n], paths[: args.images]
    timed_trunk(sample[:5], 2)  # loads the network once
    rows = []
    for repeat in range(args.repeats):
        row = {"trunk_2_threads_s": timed_trunk(sample, 2)}
        row["trunk_2_processes_wall_s"], row["trunk_2_processes_each_s"] = wall(
            [(timed_trunk, (sample[k::2], 1)) for k in range(2)]
        )
        row["fit_2_threads_s"] = timed_fit(part, part_labels, 2, 0)
        row["fit_1_thread_s"] = timed_fit(part, part_labels, 1, 0)
        row["two_fits_2_processes_wall_s"], row["two_fits_each_s"] = wall(
            [(timed_fit, (part, part_labels, 1, k)) for k in range(2)]
        )
        print(f"repeat {repeat}: {json.dumps(row)}", flush=True)
        rows.append(row)
    out = REPO / "bench" / "results" / "finetune_parallel.json"
    payload = {
        "command": "python bench/finetune_parallel.py " + " ".join(sys.argv[1:]),
        "load_avg_1_5_15": os.getloadavg(),
        "labelled_images": len(labels),
        "fit_images": n,
        "trunk_images": len(sample),
        "repeats": rows,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
