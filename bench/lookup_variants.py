"""Three more ways to look a query up beside the default two-tower, on practicum-dev folds (measured, not kept).

Run by hand (not a test):
  .venv/bin/python bench/lookup_variants.py [--seeds 0] [--workspace DIR]

For every fold seed and each of 5 group folds (the folds of `bench/quality.py`), the default two-tower (three
networks, caption neighbours, hubness term) is fitted once; each variant then changes only how its scores are
computed, so every setting ranks with the same networks, against the default itself ("default" row):

- `visual`: the query side of the caption lookup. A query's `k` nearest training captions (cosine of the query
  and caption vectors), softmax(similarity / T)-weighted, give a mean of their images' standardised Lite2
  features; its cosine with a gallery image's features, times `beta`, is added to the score. It is linear in both
  sides, so it would still be one inner product (with 1280 more entries a vector).
- `whiten`: the caption lookup's image similarities in a PCA-whitened space fitted on the memory's images (the
  top `dims` components, each divided by sqrt(eigenvalue + `shrink` x their mean eigenvalue)), at temperature T.
- `lexical`: a TF-IDF term (Snowball-stemmed words, fitted on the memory's captions). An image's lexical vector
  is the same softmax-weighted mean over its `k` nearest training images' captions as the caption lookup; its
  cosine with the query's TF-IDF vector, times `gamma`, is added to the score.

Each setting is scored on the fixed test set (100 queries x 100 images) and on the fold's held-out images (their
own captions as queries). Writes `bench/results/lookup_variants.{json,md}`: per variant, every setting's means
over the fold models, best fold MRR first, and the default's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (bench/quality.py: its loading of the pipeline's inputs and its fold protocol)
from caption_neighbours import mean_row  # noqa: E402  (a setting's means over the fold models, as that grid's)

REPO = quality.REPO
GRIDS = {
    "visual": {"k": (5, 10, 20, 50), "T": (0.02, 0.05, 0.1), "beta": (0.1, 0.2, 0.3, 0.5, 1.0)},
    "whiten": {"dims": (64, 128, 256, 400), "shrink": (0.0, 0.1, 0.5, 1.0), "T": (0.1, 0.2, 0.3)},
    "lexical": {"k": (10, 50), "T": (0.1, 0.2), "gamma": (0.05, 0.1, 0.2, 0.3, 0.5)},
}


def grid(variant: str) -> list[dict]:
    names, values = zip(*GRIDS[variant].items(), strict=True)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def whiteners(rows: np.ndarray):
    """Per (dims, shrink), the PCA whitening fitted on `rows` (one decomposition for every setting)."""
    from tasks.training.models.two_tower import unit

    mean = rows.mean(axis=0)
    _, s, vt = np.linalg.svd(rows - mean, full_matrices=False)

    def whitener(dims: int, shrink: float):
        eig = s[:dims] ** 2 / len(rows)
        projection = vt[:dims].T / np.sqrt(eig + shrink * eig.mean() + 1e-6)
        return lambda x: unit((x - mean) @ projection)

    return whitener


def gallery_with_lookup(model, image: np.ndarray, image_similarity, temperature: float):
    """The default gallery vectors (network + caption lookup, then the hubness entry) with the lookup's image
    similarities computed in the space `image_similarity` maps the standardised features to."""
    import torch

    from tasks.training.models.two_tower import unit

    memory = replace(model.memory, image=image_similarity(model.memory.image))
    image_in = model._image_in(image)
    with torch.no_grad():
        network = model.net.embed_image(torch.from_numpy(image_in)).numpy()
    captions = memory.lookup(image_similarity(unit(image_in)), model.neighbours, temperature)
    vectors = (network + model.neighbour_weight * captions) / (1 + model.neighbour_weight)
    hub = model.memory.hubness(vectors, model.hub_neighbours)
    return np.hstack([vectors, -model.hub_penalty * hub[:, None]])


def fold_query_ids(features: dict, held: set[str]) -> tuple[list[str], list[str], list[str]]:
    """Query ids of the memory's captions, the held-out images' captions and the test queries, in the order
    `build_datasets` puts their rows (the memory: own captions of the training images; see its code)."""
    pairs, captions = features["pairs"], features["captions"]
    train_images = set(pairs.loc[~pairs["image"].isin(held), "image"])
    val_images = set(pairs.loc[pairs["image"].isin(held), "image"])
    tests = features["test_queries"]
    return (
        captions.loc[captions["image"].isin(train_images), "query_id"].tolist(),
        captions.loc[captions["image"].isin(val_images), "query_id"].tolist(),
        tests.loc[tests["image"].isin(set(features["test_gallery"])), "query_id"].tolist(),
    )


def measure(features: dict, texts, seeds: list[int]) -> dict[str, dict[tuple, list[list[float]]]]:
    """Per variant, per setting, per fold model: [test R@1, test MRR, fold R@1, fold MRR]."""
    from nltk.stem.snowball import SnowballStemmer
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tasks.training.data import image_folds
    from tasks.training.metrics import retrieval_metrics
    from tasks.training.models.two_tower import CaptionMemory, TwoTowerModel, unit

    stem = SnowballStemmer("english").stem

    def words(text: str) -> list[str]:
        return [stem(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1]

    scores: dict[str, dict[tuple, list[list[float]]]] = {"default": {(): []}} | {v: {} for v in GRIDS}
    pairs = features["pairs"]
    for seed in seeds:
        for fold, held in enumerate(image_folds(pairs["image"].to_numpy(), 5, seed)):
            train, eval_data = quality.fold_datasets(features, held, seed)
            assert eval_data.test_retrieval is not None
            model = TwoTowerModel().fit(train, seed)
            memory = model.memory
            memory_ids, val_ids, test_ids = fold_query_ids(features, held)
            assert memory is not None and len(memory.text) == len(memory_ids)
            lexicon = TfidfVectorizer(analyzer=words, sublinear_tf=True).fit(texts[memory_ids])
            # the same lookup as the caption neighbours', from other sides: a query's captions to their images,
            # and an image's neighbours to their captions' words
            by_text = CaptionMemory(image=memory.text, text=memory.image, groups=memory.groups)
            by_words = replace(memory, text=lexicon.transform(texts[memory_ids]).toarray().astype(np.float32))
            whitener = whiteners(memory.image)
            sets = ((eval_data.test_retrieval, test_ids), (eval_data.val_retrieval, val_ids))
            rows: dict[str, dict[tuple, list[float]]] = {v: {} for v in scores}
            for rs, ids in sets:
                assert len(ids) == len(rs.text)
                queries = model.embed_texts(rs.text)
                base = queries @ model.embed_images(rs.image).T
                image = unit(model._image_in(rs.image))
                query_text = unit(model._text_vectors(rs.text))
                query_words = lexicon.transform(texts[ids])
                same = gallery_with_lookup(model, rs.image, lambda x: x, model.neighbour_temperature)
                assert np.allclose(same, model.embed_images(rs.image), atol=1e-5)  # the default, recomputed here
                results = {("default", ()): base}
                for s in grid("visual"):
                    visual = by_text.lookup(query_text, s["k"], s["T"]) @ image.T
                    results["visual", tuple(s.items())] = base + s["beta"] * visual
                for s in grid("whiten"):
                    gallery = gallery_with_lookup(model, rs.image, whitener(s["dims"], s["shrink"]), s["T"])
                    results["whiten", tuple(s.items())] = queries @ gallery.T
                for s in grid("lexical"):
                    lexical = by_words.lookup(image, s["k"], s["T"])
                    results["lexical", tuple(s.items())] = base + s["gamma"] * np.asarray(query_words @ lexical.T)
                for (variant, setting), matrix in results.items():
                    m = retrieval_metrics(matrix, rs.relevant)
                    rows[variant].setdefault(setting, []).extend([m["r1"], m["mrr"]])
            for variant, by_setting in rows.items():
                for setting, row in by_setting.items():
                    scores[variant].setdefault(setting, []).append(row)
            first = scores["default"][()][-1]
            print(f"seed {seed} fold {fold}: default test MRR {first[1]:.3f}, fold MRR {first[3]:.3f}", flush=True)
    return scores


def summarise(scores: dict[str, dict[tuple, list[list[float]]]]) -> dict[str, list[dict]]:
    """Per variant, each setting's means over the fold models, best fold MRR first."""
    return {
        variant: sorted(
            (mean_row(dict(setting), values) for setting, values in by_setting.items()), key=lambda r: -r["val_mrr"]
        )
        for variant, by_setting in scores.items()
    }


def table(summary: dict[str, list[dict]], seeds: str) -> str:
    lines = [
        f"# Lookup variants beside the default two-tower, 5 folds x seeds {seeds} (means over fold models)\n",
        "| variant | setting | test R@1 | test MRR | fold R@1 | fold MRR |",
        "|---|---|---|---|---|---|",
    ]
    for variant, rows in summary.items():
        for r in rows[:5]:
            setting = ", ".join(f"{k} {r[k]}" for k in GRIDS.get(variant, {}))
            lines.append(
                f"| {variant} | {setting or '-'} | {r['test_r1']:.3f} | {r['test_mrr']:.3f} | {r['val_r1']:.3f} | "
                f"{r['val_mrr']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=REPO / ".bench-workspace", help="workspace (cache reused)")
    parser.add_argument("--seeds", default="0", help="comma-separated fold seeds")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lookup_variants.json")
    args = parser.parse_args()
    if not (quality.PRACTICUM / "train_dataset.csv").is_file():
        sys.exit(f"practicum-dev not found at {quality.PRACTICUM}; set IMGSEARCH_PRACTICUM_DIR")
    quality._env()
    from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
    from tasks.ingest.dataset import ingest_dataset

    features = quality.load_features(quality.PRACTICUM, args.workspace, DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER)
    texts = ingest_dataset(quality.PRACTICUM).texts().set_index("query_id")["query_text"]
    started = time.perf_counter()
    summary = summarise(measure(features, texts, [int(s) for s in args.seeds.split(",")]))
    payload = {
        "dataset": str(quality.PRACTICUM),
        "encoders": [DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER],
        "seeds": args.seeds,
        "seconds": round(time.perf_counter() - started, 1),
        "grids": GRIDS,
        "rows": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    text = table(summary, args.seeds)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
