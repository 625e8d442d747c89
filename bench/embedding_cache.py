"""Bench: what a lookup in a large embedding cache costs (memory and time), as an index update or a scored file.

Run by hand: `python bench/embedding_cache.py [--images 50000] [--dim 6400] [--runs 2] [--data DIR]`; writes
bench/results/embedding_cache.json. The cache folder holds `--images` random vectors of `--dim` floats (6400: the
fine-tuned detector's five views of 1280) in parts of 1024 rows, as `cached_embed` writes them (made once under
`--data`, about 1.3 GB at the defaults). Each measurement is a fresh process that opens the cache and asks for:
- one key at random (an uploaded file scored by path, whose bytes the cache has seen),
- 10,000 keys at random (a re-decision of a scattered tenth of the gallery),
- the 10,000 newest keys (an index update: the flow's embedding step has just written them),
with `missing` then `get`, as `cached_embed` does; it reports the seconds and the growth of peak RSS.

`python bench/embedding_cache.py --key-index 10000000 [--runs 2]` measures the key index alone (no files): in fresh
processes, the keys of that many images (sha256 hex, as the cache stores them) are indexed part by part (13,107 a
part, a 64 MiB part of Lite2 vectors), then 20,000 of them and 100 unknown ones are looked up twice. `KeyRows`
against the dict of key strings the cache held before; writes bench/results/embedding_cache_keys.json.
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


def key_index(kind: str, count: int) -> dict:
    """In this (fresh) process: index `count` sha256 hex keys part by part, as a dict or as `KeyRows`, then look up
    20,000 of them and 100 unknown keys twice (the first lookup sorts what was added)."""
    import hashlib

    from tasks.embed.cache import KeyRows

    def keys_of(start: int, stop: int) -> list[str]:
        return [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(start, stop)]

    before = peak_rss_mib()
    start = time.perf_counter()
    rows: dict[str, int] | KeyRows = {} if kind == "dict" else KeyRows()
    for number, first in enumerate(range(0, count, 13_107)):
        keys = keys_of(first, min(count, first + 13_107))
        where = number << 32 | np.arange(len(keys), dtype=np.int64)
        if isinstance(rows, dict):
            rows.update(zip(keys, where.tolist(), strict=True))
        else:
            rows.add(keys, where)
    indexed = time.perf_counter() - start
    probe = keys_of(count - 20_000, count) + keys_of(count, count + 100)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        found = [rows.get(k, -1) for k in probe] if isinstance(rows, dict) else rows.find(probe).tolist()
        seconds.append(time.perf_counter() - start)
    if sum(f >= 0 for f in found) != 20_000:
        raise RuntimeError("the key index lost keys")
    status = Path("/proc/self/status").read_text()
    resident = next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return {
        "kind": kind,
        "keys": count,
        "index_seconds": indexed,
        "lookup_seconds": seconds,
        "peak_rss_growth_mib": peak_rss_mib() - before,
        "rss_after_mib": resident,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=6400)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO / ".bench-workspace" / "embedding-cache")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--key-index", type=int, default=0, help="measure the key index alone over this many keys")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one lookup, JSON to stdout
    args = parser.parse_args()
    folder = args.data / f"cache-{args.images}x{args.dim}"
    if args.child and args.key_index:
        print(json.dumps(key_index(args.child, args.key_index)))
        return
    if args.key_index:
        runs = []
        for run in range(args.runs):
            for kind in ("dict", "KeyRows"):
                child = [sys.executable, __file__, "--key-index", str(args.key_index), "--child", kind]
                row = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
                runs.append({"run": run, **row})
                print(json.dumps(runs[-1]), flush=True)
        out = args.out if args.out != OUT else OUT.with_name("embedding_cache_keys.json")
        out.write_text(
            json.dumps(
                {
                    "command": "python bench/embedding_cache.py " + " ".join(sys.argv[1:]),
                    "machine": platform.platform(),
                    "load_avg_1_5_15": os.getloadavg(),
                    "what": "keys indexed part by part in a fresh process, then 20,000 known and 100 unknown looked "
                    "up twice; growth of peak RSS (VmHWM), and the resident set at the end",
                    "results": runs,
                },
                indent=2,
            )
        )
        print(f"wrote {out}")
        return
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
