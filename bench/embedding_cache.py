"""Bench: what a lookup in a large embedding cache costs (memory and time), as an index update or a scored file.

Run by hand: `python bench/embedding_cache.py [--images 50000] [--dim 6400] [--runs 2] [--data DIR]`; writes
bench/results/embedding_cache.json. The cache folder holds `--images` random vectors of `--dim` floats (6400: the
fine-tuned detector's five views of 1280) in parts of 1024 rows, as `cached_embed` writes them (made once under
`--data`, about 1.3 GB at the defaults). Each measurement is a fresh process that opens the cache and asks for:
- one key at random (an uploaded file scored by path, whose bytes the cache has seen),
- 10,000 keys at random (a re-decision of a scattered tenth of the gallery),
- the 10,000 newest keys (an index update: the flow's embedding step has just written them),
with `missing` then `get`, as `cached_embed` does; it reports the seconds and the growth of peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "embedding_cache.json"
ENCODER = "bench-random"


def key(i: int) -> str:
    return f"{i:064x}"


def make_cache(folder: Path, images: int, dim: int) -> None:
    """`images` random vectors in parts of WRITE_CHUNK rows, written once (a marker file says it is complete)."""
    import tasks.embed.cache as cache_module

    done = folder.with_name(folder.name + ".complete")
    if done.is_file():
        return
    cache_module.MAX_PARTS = 10**9  # the parts as a run leaves them: no compaction while writing
    cache = cache_module.EmbeddingCache(folder, ENCODER)
    rng = np.random.default_rng(0)
    for start in range(0, images, cache_module.WRITE_CHUNK):
        n = min(cache_module.WRITE_CHUNK, images - start)
        cache.add([key(i) for i in range(start, start + n)], rng.standard_normal((n, dim), dtype=np.float32))
    done.touch()


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries that over from the parent at
    fork, so a child of the process that wrote the cache would start at the writer's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def lookup(folder: Path, images: int, count: int, which: str) -> dict:
    """In this (fresh) process: open the cache and fetch `count` keys, the newest or at random."""
    import tasks.embed.cache as cache_module

    cache_module.MAX_PARTS = 10**9  # time the lookup, not a compaction of the bench's many parts
    rows = range(images - count, images) if which == "newest" else np.random.default_rng(1).choice(images, count, False)
    keys = [key(int(i)) for i in rows]
    before = peak_rss_mib()
    start = time.perf_counter()
    cache = cache_module.EmbeddingCache(folder, ENCODER)
    if cache.missing(keys):
        raise RuntimeError("the bench cache lost vectors")
    matrix = cache.get(keys)
    seconds = time.perf_counter() - start
    grown = peak_rss_mib() - before
    return {"keys": count, "which": which, "seconds": seconds, "rss_growth_mib": grown, "rows": len(matrix)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=6400)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-workspace" / "embedding-cache")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one lookup, JSON to stdout
    args = parser.parse_args()
    folder = args.data / f"cache-{args.images}x{args.dim}"
    if args.child:
        count, which = args.child.split(":")
        print(json.dumps(lookup(folder, args.images, int(count), which)))
        return
    make_cache(folder, args.images, args.dim)
    rows = []
    for run in range(args.runs):
        for count, which in ((1, "random"), (10_000, "random"), (10_000, "newest")):
            child = [sys.executable, __file__, "--images", str(args.images), "--dim", str(args.dim)]
            child += ["--data", str(args.data), "--child", f"{min(count, args.images)}:{which}"]
            row = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
            rows.append({"run": run, **row})
            print(
                f"{row['keys']:>6} {which:>6} keys: {row['seconds']:6.2f} s, peak RSS +{row['rss_growth_mib']:.0f} MiB",
                flush=True,
            )
    payload = {
        "command": "python bench/embedding_cache.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": os.getloadavg(),
        "images": args.images,
        "dim": args.dim,
        "cache_bytes": sum(p.stat().st_size for p in folder.glob("part-*.parquet")),
        "what": "a fresh process opens the cache and asks for the keys (missing, then get); seconds of that, and "
        "the growth of its peak RSS",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
