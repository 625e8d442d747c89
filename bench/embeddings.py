"""Benchmark of the embedding stage on practicum-dev: images/s against a plain torch loop, cold and warm runs, peak RSS.

    python bench/embeddings.py [--image-encoder efficientnet-lite0] [--compare efficientnet-lite2] [--limit N]

Writes bench/results/embeddings.json. Targets: stage >= 0.9x the plain loop; warm rerun over 1000
images < 5 s; peak RSS < 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for name, value in {
    "GX_ANALYTICS_ENABLED": "False",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ.setdefault(name, value)

RESULTS = REPO / "bench" / "results" / "embeddings.json"


def practicum_dir() -> Path:
    return Path(os.environ.get("IMGSEARCH_PRACTICUM_DIR", REPO.parent / "shared" / "data" / "practicum-dev"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def plain_loop(encoder, paths: list[Path], batch_size: int) -> float:
    """The baseline: decode, preprocess and run the same model batch by batch, all in one thread of Python."""
    import torch
    from PIL import Image

    transform, model = encoder.preprocess, encoder.model
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
            model(batch)
    return time.perf_counter() - started


def interleaved(encoder, paths: list[Path], batch_size: int, workers: int, rounds: int) -> tuple[float, float, float]:
    """Plain loop and stage over the same images, chunk by chunk and in alternating order, so that load from
    other jobs on the machine falls on both alike. The stage runs cold (every chunk is new to its fresh
    workspace): hashing, cache lookups and writes included. Returns (plain s, stage s, warm s over all)."""
    from tasks.embed.cache import embed_image_files
    from tasks.workspace import Workspace

    size = -(-len(paths) // rounds)
    plain_s = stage_s = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        workspace = Workspace(Path(tmp))

        def stage(chunk: list[Path]) -> float:
            started = time.perf_counter()
            _, report = embed_image_files(chunk, encoder, workspace, batch_size, workers, progress=False)
            assert report.misses == report.unique, report
            return time.perf_counter() - started

        for i in range(rounds):
            chunk = paths[i * size : (i + 1) * size]
            if i % 2:
                stage_s += stage(chunk)
                plain_s += plain_loop(encoder, chunk, batch_size)
            else:
                plain_s += plain_loop(encoder, chunk, batch_size)
                stage_s += stage(chunk)
        started = time.perf_counter()
        _, report = embed_image_files(paths, encoder, workspace, batch_size, workers, progress=False)
        warm_s = time.perf_counter() - started
        assert report.misses == 0, report
    return plain_s, stage_s, warm_s


def whole_stage(data_dir: Path, text_encoder: str, image_encoder: str) -> dict:
    """The pipeline's stage as the flow runs it (texts and images, contracts included), cold then warm."""
    from tasks.embed.stage import EmbedInputs, embed_inputs
    from tasks.ingest.dataset import ingest_dataset
    from tasks.workspace import Workspace

    inputs = EmbedInputs.from_dataset(ingest_dataset(data_dir))
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        workspace = Workspace(Path(tmp))
        started = time.perf_counter()
        cold = embed_inputs(inputs, text_encoder, image_encoder, workspace)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = embed_inputs(inputs, text_encoder, image_encoder, workspace)
        warm_s = time.perf_counter() - started
    assert warm.summary.shards == 0
    return {
        "cold_s": cold_s,
        "warm_s": warm_s,
        "texts": len(inputs.texts),
        "images": len(inputs.train_images) + len(inputs.test_images),
        "cold_summary": asdict(cold.summary),
    }


def measure_encoder(encoder_id: str, paths: list[Path], batch_size: int, workers: int, rounds: int = 4) -> dict:
    from PIL import Image

    from tasks.embed.encoders.base import configure_torch_threads
    from tasks.embed.encoders.registry import get_image_encoder

    configure_torch_threads()
    encoder = get_image_encoder(encoder_id)
    started = time.perf_counter()
    encoder.encode_images([Image.new("RGB", (300, 300))] * 2)  # load and warm up the model outside the timings
    load_s = time.perf_counter() - started
    plain_s, stage_cold_s, stage_warm_s = interleaved(encoder, paths, batch_size, workers, rounds)
    return {
        "encoder": encoder_id,
        "images": len(paths),
        "model_load_s": round(load_s, 2),
        "plain_s": round(plain_s, 2),
        "stage_s": round(stage_cold_s, 2),
        "plain_images_per_s": round(len(paths) / plain_s, 2),
        "stage_images_per_s": round(len(paths) / stage_cold_s, 2),
        "ratio": round(plain_s / stage_cold_s, 3),
        "warm_images_s": round(stage_warm_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-encoder", default="minilm-l6")
    parser.add_argument("--image-encoder", default="efficientnet-lite0")
    parser.add_argument("--compare", nargs="*", default=[], help="further image encoders to time (images/s only)")
    parser.add_argument("--compare-limit", type=int, default=200, help="images for the comparison encoders")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--decode-threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="alternating plain/stage chunks (evens out machine load)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    data_dir = practicum_dir()
    if not (data_dir / "train_dataset.csv").is_file():
        print(f"practicum-dev not found at {data_dir}; set IMGSEARCH_PRACTICUM_DIR")  # noqa: T201
        return 2
    paths = sorted((data_dir / "train_images").glob("*.jpg")) + sorted((data_dir / "test_images").glob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]

    load_before = os.getloadavg()[0]
    main_run = measure_encoder(args.image_encoder, paths, args.batch_size, args.decode_threads, args.rounds)
    peaks = {"after_image_encoder": round(peak_rss_mib(), 1)}
    stage = whole_stage(data_dir, args.text_encoder, args.image_encoder)
    peaks["after_whole_stage"] = round(peak_rss_mib(), 1)
    comparisons = [
        measure_encoder(encoder_id, paths[: args.compare_limit], args.batch_size, args.decode_threads)
        for encoder_id in args.compare
    ]
    import torch

    result = {
        "images": main_run["images"],
        "plain_images_per_s": main_run["plain_images_per_s"],
        "stage_images_per_s": main_run["stage_images_per_s"],
        "ratio": main_run["ratio"],
        "cold_s": round(stage["cold_s"], 2),
        "warm_s": round(stage["warm_s"], 2),
        "warm_images_only_s": main_run["warm_images_s"],
        "peak_rss_mib": peaks["after_whole_stage"],
        "peak_rss_mib_by_phase": {**peaks, "after_comparisons": round(peak_rss_mib(), 1)},
        "stage_texts": stage["texts"],
        "stage_images": stage["images"],
        "text_encoder": args.text_encoder,
        "image_encoder": args.image_encoder,
        "batch_size": args.batch_size,
        "decode_threads": args.decode_threads,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "machine": platform.platform(),
        "main": main_run,
        "comparisons": comparisons,
        "targets": {
            "ratio>=0.9": main_run["ratio"] >= 0.9,
            "warm_s<5 (1000 images + texts)": stage["warm_s"] < 5,
            "peak_rss<2GiB": peaks["after_whole_stage"] < 2048,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    rows = [
        ("images", result["images"]),
        (f"plain torch loop ({args.image_encoder}), images/s", result["plain_images_per_s"]),
        ("embedding stage (cold, hashing + cache writes), images/s", result["stage_images_per_s"]),
        ("ratio stage / plain (target >= 0.9)", result["ratio"]),
        (f"whole stage cold: {stage['texts']} texts + {stage['images']} images, s", result["cold_s"]),
        ("whole stage warm (all cached, contracts included), s (target < 5)", result["warm_s"]),
        ("images only warm, s", result["warm_images_only_s"]),
        ("peak RSS of the default stage, MiB (target < 2048)", result["peak_rss_mib"]),
        ("peak RSS incl. comparison encoders, MiB", result["peak_rss_mib_by_phase"]["after_comparisons"]),
    ] + [
        (
            f"{c['encoder']} on {c['images']} images: plain / stage images/s",
            f"{c['plain_images_per_s']} / {c['stage_images_per_s']}",
        )
        for c in comparisons
    ]
    width = max(len(label) for label, _ in rows)
    print("\n".join(f"{label:<{width}}  {value}" for label, value in rows))  # noqa: T201
    print(f"wrote {args.output}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
