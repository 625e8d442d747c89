"""Quality benchmark on practicum-dev with error bars: group folds and seeds on cached features, or one pipeline run.

Run by hand (not a test):
  .venv/bin/python bench/quality.py [--text-encoder ID] [--image-encoder ID] [--seeds 0,1,2] [--folds 5]
  .venv/bin/python bench/quality.py --pipeline     # the whole pipeline once (its metrics and wall time)

The repeated measurement embeds through the pipeline's cache (`--workspace`, so only the first run pays), then
for every seed splits the safe training images into `--folds` group folds. Each fold's model is trained on the
other folds with the pipeline's own code (`build_datasets`, `train_and_evaluate`) and scored on
  - its held-out images: their own captions as queries against those images as the gallery (`val_*`),
  - the fixed test set: 100 queries against 100 test images,
  - Kendall tau-c against the mean expert score, over the out-of-fold predictions of all folds of a seed.
Every metric is reported as mean, std, min and max over the fold models (tau-c: over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PRACTICUM = Path(os.environ.get("IMGSEARCH_PRACTICUM_DIR", REPO.parent / "shared" / "data" / "practicum-dev"))
KEYS = ("rmse", "mae", "tau_c", "r1", "r5", "r10", "mrr", "ndcg10")
SAFE_KEYS = ("safe_r1", "safe_mrr", "safe_ndcg10", "val_mrr")
# What the repeated measurement summarises per model: test-set retrieval, fold retrieval, fold regression error.
SPREAD_KEYS = ("r1", "r5", "mrr", "safe_r1", "safe_mrr", "val_r1", "val_r5", "val_mrr", "rmse", "mae", "tau_c")


def _env() -> None:
    for key, value in (
        ("GX_ANALYTICS_ENABLED", "False"),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        ("DO_NOT_TRACK", "1"),
        ("HF_HUB_OFFLINE", "1"),
    ):
        os.environ.setdefault(key, value)


def spread(values: list[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if not len(arr):
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": len(arr),
    }


def load_features(data_dir: Path, workspace: Path, text_encoder: str, image_encoder: str) -> dict:
    """The pipeline's inputs to training, from its plain functions: safe pairs, captions, test set, embeddings."""
    from tasks.embed.stage import EmbedInputs, embed_inputs
    from tasks.ingest.dataset import ingest_dataset
    from tasks.ratings.aggregate import RatingParams, aggregate_ratings
    from tasks.safety.text_screen import apply_child_safety
    from tasks.training.inputs import captions_frame
    from tasks.workspace import Workspace

    dataset = ingest_dataset(data_dir)
    ratings = aggregate_ratings(dataset.expert, dataset.crowd, dataset.texts(), RatingParams())
    safety = apply_child_safety(ratings.pairs, dataset.texts())
    started = time.perf_counter()
    embedded = embed_inputs(EmbedInputs.from_dataset(dataset), text_encoder, image_encoder, Workspace(workspace))
    flagged_texts = set(safety.text_flags.loc[safety.text_flags["flagged"], "query_id"])
    flagged_images = set(safety.image_flags.loc[safety.image_flags["flagged"], "image"])
    return {
        "pairs": safety.kept,
        "captions": captions_frame(dataset.texts(), flagged_images, flagged_texts, set(embedded.train_images.keys)),
        "test_queries": dataset.queries[["query_id", "image"]].assign(
            safe=~dataset.queries["query_id"].isin(flagged_texts)
        ),
        "test_gallery": dataset.test_images["image"].tolist(),
        "embedded": embedded,
        "embed_seconds": time.perf_counter() - started,
    }


def fold_datasets(features: dict, held: np.ndarray, seed: int):
    """One fold's training data (every safe image but the `held` ones) and its evaluation data (the held images, the
    fixed test set), built as the pipeline builds them."""
    from tasks.training.data import build_datasets

    embedded = features["embedded"]
    train, eval_data, _ = build_datasets(
        features["pairs"],
        features["captions"],
        embedded.texts,
        embedded.train_images,
        0.2,
        seed,
        test_queries=features["test_queries"],
        test_gallery=features["test_gallery"],
        test_image_emb=embedded.test_images,
        expert_pair_weight=4.0,
        held_out_images=held,
    )
    return train, eval_data


def repeated(
    features: dict,
    kinds: tuple[str, ...],
    seeds: list[int],
    n_folds: int,
    options: dict,
    only_folds: set[int] | None = None,
    workers: int = 1,
) -> dict:
    """Train and score every model on every fold of every seed; per-fold rows and out-of-fold tau-c per seed."""
    from tasks.training.data import image_folds
    from tasks.training.fit import train_and_evaluate
    from tasks.training.metrics import kendall_tau_c

    pairs = features["pairs"]
    rows: dict[str, list[dict]] = {kind: [] for kind in kinds}
    oof_tau: dict[str, list[float]] = {kind: [] for kind in kinds}
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    curves: dict[str, dict] = {}
    for seed in seeds:
        preds: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
        experts: list[np.ndarray] = []
        for fold, held in enumerate(image_folds(pairs["image"].to_numpy(), n_folds, seed)):
            if only_folds is not None and fold not in only_folds:
                continue  # a quick screen on some folds; tau-c is then out-of-fold over those folds only
            train, eval_data = fold_datasets(features, held, seed)
            outcome = train_and_evaluate(train, eval_data, kinds, seed=seed, model_options=options, workers=workers)
            experts.append(eval_data.val_expert)
            for kind in kinds:
                row = {k: float(v) for k, v in outcome.metrics.loc[kind].items()}
                rows[kind].append({"seed": seed, "fold": fold, **row})
                seconds[kind].append(outcome.fit_seconds[kind])
                preds[kind].append(outcome.models[kind].predict(eval_data.val.text, eval_data.val.image))
                print(
                    f"seed {seed} fold {fold} {kind:10s} test R@1 {row['r1']:.3f} MRR {row['mrr']:.3f} "
                    f"fold R@1 {row['val_r1']:.3f} MRR {row['val_mrr']:.3f} tau-c {row['tau_c']:.3f} "
                    f"({outcome.fit_seconds[kind]:.0f} s)",
                    flush=True,
                )
        for kind in kinds:
            oof_tau[kind].append(kendall_tau_c(np.concatenate(preds[kind]), np.concatenate(experts)))
            if kind not in curves:  # the first seed's out-of-fold predictions
                curves[kind] = reliability(np.concatenate(preds[kind]), np.concatenate(experts))
    summary = {
        kind: {
            **{key: spread([r[key] for r in rows[kind]]) for key in SPREAD_KEYS},
            "oof_tau_c": spread(oof_tau[kind]),
            "fit_seconds": spread(seconds[kind]),
        }
        for kind in kinds
    }
    return {"summary": summary, "folds": rows, "oof_tau_c": oof_tau, "reliability": curves}


def reliability(pred: np.ndarray, expert: np.ndarray, bins: int = 10) -> dict:
    """Calibration against the experts: pairs binned by predicted score, mean score vs mean expert score per bin.

    The expert score is the mean of the three ratings mapped to [0, 1] (the training target of expert pairs), so a
    calibrated model's bin means lie on the diagonal; `ece` is the pair-weighted mean gap.
    """
    keep = ~np.isnan(expert)
    pred, expert = pred[keep], expert[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, bins - 1)
    rows = [
        {
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "n": int((which == b).sum()),
            "mean_score": float(pred[which == b].mean()),
            "mean_expert": float(expert[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]
    ece = sum(r["n"] * abs(r["mean_score"] - r["mean_expert"]) for r in rows) / max(1, len(pred))
    return {"bins": rows, "ece": float(ece), "pairs": len(pred)}


def plot_reliability(curves: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for kind, curve in curves.items():
        xs = [r["mean_score"] for r in curve["bins"]]
        ys = [r["mean_expert"] for r in curve["bins"]]
        ax.plot(xs, ys, marker="o", label=f"{kind} (ECE {curve['ece']:.3f})")
    ax.set_xlabel("predicted score (out-of-fold)")
    ax.set_ylabel("mean expert score, (mean rating - 1) / 3")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fmt(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.2f}–{s['max']:.2f})"


def repeated_main(args: argparse.Namespace) -> None:
    _env()
    features = load_features(PRACTICUM, args.workspace, args.text_encoder, args.image_encoder)
    seeds = [int(s) for s in args.seeds.split(",")]
    kinds = tuple(args.models.split(","))
    options = {"two_tower": json.loads(args.two_tower)} if args.two_tower else {}
    started = time.perf_counter()
    only = {int(f) for f in args.only_folds.split(",")} if args.only_folds else None
    result = repeated(features, kinds, seeds, args.folds, options, only, args.workers or 2)
    payload = {
        "dataset": str(PRACTICUM),
        "text_encoder": args.text_encoder,
        "image_encoder": args.image_encoder,
        "seeds": seeds,
        "folds": args.folds,
        "only_folds": args.only_folds or "all",
        "two_tower_options": options.get("two_tower", {}),
        "pairs": len(features["pairs"]),
        "captions": len(features["captions"]),
        "embed_seconds": round(features["embed_seconds"], 1),
        "bench_seconds": round(time.perf_counter() - started, 1),
        "threads": os.environ.get("IMGSEARCH_TORCH_THREADS"),
        "load_average": os.getloadavg()[0],
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    lines = [
        f"# Quality on practicum-dev: {args.text_encoder} + {args.image_encoder}, "
        f"{args.folds} folds{' (only ' + args.only_folds + ')' if args.only_folds else ''} x seeds {args.seeds} "
        "(mean ± std (min–max) over fold models)\n",
        "| model | test R@1 | test MRR | fold R@1 | fold MRR | τ-c out-of-fold (over seeds) | fold RMSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, s in result["summary"].items():
        lines.append(
            f"| {kind} | {fmt(s['r1'])} | {fmt(s['mrr'])} | {fmt(s['val_r1'])} | {fmt(s['val_mrr'])} "
            f"| {fmt(s['oof_tau_c'])} | {fmt(s['rmse'])} |"
        )
    lines.append("")
    lines.append(
        "Calibration (first seed, out-of-fold): "
        + ", ".join(
            f"{kind} ECE {curve['ece']:.3f} over {curve['pairs']} expert pairs"
            for kind, curve in result["reliability"].items()
        )
    )
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(table + "\n")
    plot_reliability(
        result["reliability"],
        args.out.with_suffix(".reliability.png"),
        f"{args.text_encoder} + {args.image_encoder}: score vs experts",
    )
    print(table)


def pipeline_main(args: argparse.Namespace) -> None:
    """The whole pipeline once: every model's metrics and the pipeline's wall time (cold or warm cache)."""
    _env()
    from flows.pipeline import RunParams, run_pipeline
    from tasks.training.inputs import TrainParams

    training_options: dict = {"fit_workers": args.workers}
    if args.members is not None:
        training_options["two_tower_members"] = args.members
    params = RunParams(
        data_dir=PRACTICUM,
        workspace=args.workspace,
        seed=int(args.seeds.split(",")[0]),
        text_encoder=args.text_encoder,
        image_encoder=args.image_encoder,
        training=TrainParams(**training_options),
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
        "seed": params.seed,
        "two_tower_members": params.training.two_tower_members,
        "fit_workers": params.training.fit_workers,
        "models": models,
        "best": training.best,
        "primary_metric": training.primary_metric,
        "promoted": training.promoted,
        "train_seconds": training.train_seconds,
        "fit_seconds": training.fit_seconds,
        "embed_seconds": result.embeddings.seconds,
        "pipeline_seconds": total,
        "load_average": os.getloadavg()[0],
        "split": asdict(training.split),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    header = "| model | " + " | ".join(KEYS + SAFE_KEYS) + " |"
    lines = [header, "|---" * (len(KEYS + SAFE_KEYS) + 1) + "|"]
    for name, row in models.items():
        lines.append(
            f"| {name} | " + " | ".join("—" if row[k] is None else f"{row[k]:.3f}" for k in KEYS + SAFE_KEYS) + " |"
        )
    print("\n".join(lines))
    print(f"best {training.best}; training {training.train_seconds:.0f} s; pipeline {total:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workspace", type=Path, default=REPO / ".bench-workspace", help="workspace root (embedding cache reused)"
    )
    parser.add_argument("--text-encoder", default=None, help="text encoder id (default: the pipeline's)")
    parser.add_argument("--image-encoder", default=None, help="image encoder id (default: the pipeline's)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (fold assignment and training)")
    parser.add_argument("--folds", type=int, default=5, help="group folds of the training images")
    parser.add_argument("--only-folds", default="", help="comma-separated fold numbers to run (a quick screen)")
    parser.add_argument("--models", default="two_tower,study_mlp", help="model kinds to fit per fold")
    parser.add_argument("--two-tower", default="", help="JSON of TwoTowerModel options, e.g. '{\"hidden\": 1024}'")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes fitting the models side by side, the same models as 1 (default: 2; with --pipeline, the "
        "pipeline's own choice)",
    )
    parser.add_argument(
        "--members", type=int, default=None, help="with --pipeline: two-tower networks (default: the pipeline's)"
    )
    parser.add_argument("--pipeline", action="store_true", help="run the whole pipeline once instead (timing)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/quality*.json)")
    args = parser.parse_args()
    if not (PRACTICUM / "train_dataset.csv").is_file():
        sys.exit(f"practicum-dev not found at {PRACTICUM}; set IMGSEARCH_PRACTICUM_DIR")
    from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

    args.text_encoder = args.text_encoder or DEFAULT_TEXT_ENCODER
    args.image_encoder = args.image_encoder or DEFAULT_IMAGE_ENCODER
    if args.out is None:
        name = f"quality-{args.text_encoder}+{args.image_encoder}" + ("-pipeline" if args.pipeline else "")
        args.out = REPO / "bench" / "results" / f"{name}.json"
    (pipeline_main if args.pipeline else repeated_main)(args)


if __name__ == "__main__":
    main()
