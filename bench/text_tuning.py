"""Bench: does locked-image text tuning (LiT) of MiniLM's last layers make the two-tower rank better? (issue #12)

Run by hand (not a test):
  .venv/bin/python bench/text_tuning.py [--layers 2] [--epochs 12] [--seed 0] [--only-folds 0,1] [--threads 1]
writes bench/results/text_tuning.json (or `--out NAME`).

What it compares, on the same group folds of practicum-dev's safe training images as `bench/quality.py`:
  - `frozen`: the two-tower on MiniLM's own text vectors (`TwoTowerModel`'s default towers, or `--two-tower`;
    the results of 2026-12-05 were measured with MLP / MLP towers, the default then);
  - `lit`: MiniLM's last `--layers` transformer layers tuned with a symmetric contrastive (InfoNCE) loss
    against the frozen image features (a linear map of them into MiniLM's 384-d space is trained with it),
    on the own captions of the fold's training images only; then every text re-embedded with the tuned
    network and the same two-tower trained on those vectors;
  - `lit_direct`: the tuned network's own ranking (cosine of the text vector and the mapped image vector), no
    two-tower.
Each fold is scored on its held-out images (their captions as queries, `val_*`) and on the fixed test set
(100 queries x 100 images), as in `bench/quality.py`. The tuned network only ever sees training captions of
the fold, so neither evaluation leaks.
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
sys.path.insert(0, str(REPO / "bench"))

KEYS = ("r1", "r5", "mrr", "safe_r1", "safe_mrr", "val_r1", "val_mrr", "tau_c")


def tune_text_encoder(
    captions: list[str], image_vectors: np.ndarray, image_row: np.ndarray, args
) -> tuple[object, object, float]:
    """MiniLM with its last `args.layers` layers trained contrastively against fixed image vectors (one row per
    caption, the vector of the image it describes; `image_row` numbers each caption's image). Returns
    (sentence-transformer, image map, seconds)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from torch import nn
    from torch.nn import functional as F

    from tasks.embed.encoders.locate import minilm_path

    torch.manual_seed(args.seed)
    model = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    bert = model[0].auto_model
    for p in bert.parameters():
        p.requires_grad_(False)
    tuned = list(bert.encoder.layer[-args.layers :]) if args.layers else []
    for layer in tuned:
        for p in layer.parameters():
            p.requires_grad_(True)
    mean, std = image_vectors.mean(0), image_vectors.std(0) + 1e-3
    images = torch.from_numpy(((image_vectors - mean) / std).astype(np.float32))
    image_map = nn.Linear(images.shape[1], bert.config.hidden_size)
    log_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
    groups = [{"params": list(image_map.parameters()) + [log_scale], "lr": args.lr_head}]
    if tuned:
        groups.append({"params": [p for layer in tuned for p in layer.parameters()], "lr": args.lr_text})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    # one caption per image per step, so no batch holds two captions of the same image (false negatives)
    by_image: dict[int, list[int]] = {}
    for i, row in enumerate(image_row):
        by_image.setdefault(int(row), []).append(i)
    distinct = np.array(sorted(by_image))
    steps = args.epochs * ((len(distinct) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1
    )
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    bert.train()
    for epoch in range(args.epochs):
        order, total = rng.permutation(distinct), 0.0
        for s in range(0, len(order), args.batch):
            rows = order[s : s + args.batch]
            picked = [by_image[int(r)][rng.integers(len(by_image[int(r)]))] for r in rows]
            features = model.tokenize([captions[i] for i in picked])
            text = F.normalize(model(features)["sentence_embedding"], dim=-1)
            image = F.normalize(image_map(images[picked]), dim=-1)
            logits = log_scale.clamp(max=np.log(100)).exp() * text @ image.T
            target = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(rows)
        seconds = time.perf_counter() - start
        print(f"  lit epoch {epoch + 1}: loss {total / len(distinct):.3f}, {seconds:.0f} s", flush=True)
    bert.eval()
    image_map.eval()
    image_map.mean_std = (mean, std)  # type: ignore[attr-defined]
    return model, image_map, time.perf_counter() - start


def embed_texts(model, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False))


class DirectRanking:
    """The tuned network's own ranking, as a pair model: cosine of the (tuned) text vector and the mapped image
    vector, so `evaluate` scores it exactly as the pipeline's models."""

    def __init__(self, image_map) -> None:
        self.image_map = image_map

    def _images(self, image: np.ndarray) -> np.ndarray:
        import torch
        from torch.nn import functional as F

        mean, std = self.image_map.mean_std
        with torch.no_grad():
            x = torch.from_numpy(((image - mean) / std).astype(np.float32))
            return F.normalize(self.image_map(x), dim=-1).numpy()

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return text @ self._images(image).T

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return (text * self._images(image)).sum(axis=1)


def main(args) -> dict:
    import pandas as pd
    import torch
    from quality import PRACTICUM, load_features

    from tasks.embed.cache import Embeddings
    from tasks.ingest.dataset import ingest_dataset
    from tasks.training.data import build_datasets, image_folds
    from tasks.training.fit import evaluate, train_and_evaluate

    torch.set_num_threads(args.threads)
    features = load_features(PRACTICUM, args.workspace, "minilm-l6", args.image_encoder)
    texts_frame = ingest_dataset(PRACTICUM).texts()
    texts_by_id = dict(zip(texts_frame["query_id"], texts_frame["query_text"], strict=True))
    embedded, pairs, captions = features["embedded"], features["pairs"], features["captions"]
    all_ids = list(embedded.texts.keys)
    rows: list[dict] = []
    two_tower = {"two_tower": json.loads(args.two_tower)} if args.two_tower else None
    for fold, held in enumerate(image_folds(pairs["image"].to_numpy(), args.folds, args.seed)):
        if args.only_folds and fold not in args.only_folds:
            continue
        own = captions[captions["safe"] & ~captions["image"].isin(held) & captions["image"].isin(pairs["image"])]
        own = own[["query_id", "image"]]
        if args.rated_positives < 1:  # rated matches of the fold's training images as more positives
            rated = pairs[(pairs["target"] >= args.rated_positives) & ~pairs["image"].isin(held)]
            own = pd.concat([own, rated[["query_id", "image"]]]).drop_duplicates().reset_index(drop=True)
        image_keys = sorted(set(own["image"]))
        row_of = {name: i for i, name in enumerate(image_keys)}
        image_row = np.array([row_of[name] for name in own["image"]])
        image_vectors = embedded.train_images.lookup(image_keys)[image_row]
        print(f"fold {fold}: tuning on {len(own)} captions of {len(image_keys)} images", flush=True)
        captions_text = [texts_by_id[q] for q in own["query_id"]]
        model, image_map, seconds = tune_text_encoder(captions_text, image_vectors, image_row, args)
        start = time.perf_counter()
        tuned_texts = Embeddings(all_ids, embed_texts(model, [texts_by_id[q] for q in all_ids]), "minilm-l6-lit")
        embed_seconds = time.perf_counter() - start
        for name, text_emb in (("frozen", embedded.texts), ("lit", tuned_texts)):
            train, eval_data, _ = build_datasets(
                pairs,
                captions,
                text_emb,
                embedded.train_images,
                0.2,
                args.seed,
                test_queries=features["test_queries"],
                test_gallery=features["test_gallery"],
                test_image_emb=embedded.test_images,
                expert_pair_weight=4.0,
                held_out_images=held,
            )
            outcome = train_and_evaluate(train, eval_data, ("two_tower",), seed=args.seed, model_options=two_tower)
            metrics = {k: float(outcome.metrics.loc["two_tower"][k]) for k in KEYS}
            rows.append({"fold": fold, "text": name, **metrics})
            print(f"fold {fold} {name:6s} " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)
        # eval_data is the `lit` one: its text vectors are the tuned network's
        direct = evaluate(DirectRanking(image_map), eval_data).metrics
        rows.append({"fold": fold, "text": "lit_direct", **{k: float(direct[k]) for k in KEYS}})
        rows[-2]["tune_seconds"], rows[-2]["reembed_seconds"] = round(seconds, 1), round(embed_seconds, 1)
        print(f"fold {fold} direct " + " ".join(f"{k} {float(direct[k]):.3f}" for k in KEYS), flush=True)
    summary = {}
    for name in ("frozen", "lit", "lit_direct"):
        mine = [r for r in rows if r["text"] == name]
        summary[name] = {k: round(float(np.mean([r[k] for r in mine if k in r])), 3) for k in mine[0] if k in KEYS}
    return {
        "command": "python bench/text_tuning.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "load_avg_1_5_15": os.getloadavg(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "per_fold": rows,
        "mean_over_folds": summary,
    }


if __name__ == "__main__":
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("GX_ANALYTICS_ENABLED", "False")):
        os.environ.setdefault(key, value)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO / ".bench-workspace")
    parser.add_argument("--image-encoder", default="efficientnet-lite2")
    parser.add_argument("--layers", type=int, default=2, help="MiniLM's last layers to train (0: only the image map)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the images, one caption each")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr-text", type=float, default=5e-5)
    parser.add_argument("--lr-head", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=lambda s: {int(x) for x in s.split(",") if x}, default=set())
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--rated-positives", type=float, default=1.0, help="also pairs rated at least this (e.g. 0.67); 1: own captions"
    )
    parser.add_argument("--two-tower", default="", help="JSON of TwoTowerModel options")
    parser.add_argument("--out", default="text_tuning")
    args = parser.parse_args()
    result = main(args)
    (REPO / "bench" / "results" / f"{args.out}.json").write_text(json.dumps(result, indent=2, default=list) + "\n")
    print(json.dumps(result["mean_over_folds"], indent=2))
