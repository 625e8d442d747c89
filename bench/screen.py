"""Bench: the child-content text screen's recall and false refusals per family, and its latency per query.

Run by hand: `python bench/screen.py [--eval tests/safety/screen_eval.tsv] [--repeats 3]`; writes
bench/results/screen.json and prints the table. Targets (issue 11): recall >= 0.98 on every child
family, false refusals <= 0.03 on every adult family, p99 < 2 ms a query.

Latency: `ChildContentFilter.screen(text)` on each text of the set, one call at a time, after one
warm-up call (which loads nltk, the vocabularies and the indexes: `load_s`). The first pass sees every
text for the first time (`cold`: per-token caches empty for its words); later passes repeat the set
(`warm`). Wall time (perf_counter) and CPU time of the process (process_time) are both reported: on
a shared machine the wall p99 includes time the process waited for a core, the CPU p99 does not.
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
RESULTS = REPO / "bench" / "results" / "screen.json"
EVAL_SET = REPO / "tests" / "safety" / "screen_eval.tsv"
TARGET_P99_MS = 2.0


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    p50, p99, top = np.percentile(np.asarray(seconds) * 1000.0, [50, 99, 100])
    return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3), "max_ms": round(float(top), 3)}


def time_pass(content_filter, texts: list[str]) -> dict[str, dict[str, float]]:
    wall, cpu = [], []
    for text in texts:
        w0, c0 = time.perf_counter(), time.process_time()
        content_filter.screen(text)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall": percentiles_ms(wall), "cpu": percentiles_ms(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=EVAL_SET, help="The evaluation set (family, label, text).")
    parser.add_argument("--repeats", type=int, default=3, help="Warm passes over the set after the cold one.")
    args = parser.parse_args()

    from tasks.safety.screen_eval import errors, family_rates, read_eval_set, screen_eval_set
    from tasks.safety.text_screen import ChildContentFilter

    frame = read_eval_set(args.eval)
    content_filter = ChildContentFilter()
    started = time.perf_counter()
    content_filter.screen("warm up the screen")
    load_s = time.perf_counter() - started
    texts = frame["text"].tolist()
    cold = time_pass(content_filter, texts)
    warm = [time_pass(content_filter, texts) for _ in range(args.repeats)]
    warm_best = min(warm, key=lambda p: p["wall"]["p99_ms"])

    screened = screen_eval_set(frame, content_filter)
    rates = family_rates(screened)
    wrong = errors(screened)
    payload = {
        "command": "python bench/screen.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "eval_set": str(args.eval.relative_to(REPO) if args.eval.is_relative_to(REPO) else args.eval),
        "texts": {label: int((frame["label"] == label).sum()) for label in ("child", "adult")},
        "families": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in rates.astype({"texts": int, "flagged": int, "meets_target": bool}).to_dict("records")
        ],
        "all_targets_met": bool(rates["meets_target"].all()),
        "latency": {"load_s": round(load_s, 2), "cold": cold, "warm": warm_best, "target_p99_ms": TARGET_P99_MS},
        "errors": wrong.assign(matches=wrong["matches"].map(list)).to_dict("records"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf8")

    print(f"{'label':6} {'family':13} {'texts':>5} {'flagged':>7} {'metric':>13} {'rate':>6}  target")
    for row in rates.itertuples():
        print(
            f"{row.label:6} {row.family:13} {row.texts:5d} {row.flagged:7d} {row.metric:>13} {row.rate:6.3f}  "
            f"{'<=' if row.metric == 'false_refusal' else '>='} {row.target} {'ok' if row.meets_target else 'MISSED'}"
        )
    for name, timing in (("cold", cold), ("warm", warm_best)):
        print(
            f"latency {name}: wall p50 {timing['wall']['p50_ms']} ms, p99 {timing['wall']['p99_ms']} ms; "
            f"cpu p50 {timing['cpu']['p50_ms']} ms, p99 {timing['cpu']['p99_ms']} ms (target p99 < {TARGET_P99_MS})"
        )
    print(f"load {load_s:.2f} s; load average {payload['load_avg_1_5_15']}; {len(wrong)} errors; wrote {RESULTS}")


if __name__ == "__main__":
    main()
