"""Training data: split by image, features for every model, the retrieval sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from tasks.training.models import TrainingData


class EmbeddingLookup(Protocol):
    """Anything that returns embedding rows for keys (query ids or image names), in order."""

    def lookup(self, keys) -> np.ndarray: ...


@dataclass(frozen=True)
class RetrievalSet:
    """Queries against a gallery: query q's relevant image is gallery row `relevant[q]`."""

    text: np.ndarray
    image: np.ndarray
    relevant: np.ndarray
    safe: np.ndarray  # the query passes the child-content screen

    def __len__(self) -> int:
        return len(self.relevant)


@dataclass(frozen=True)
class EvalData:
    val: TrainingData
    val_expert: np.ndarray  # mean expert score in [0, 1], NaN where no expert rated the pair
    val_retrieval: RetrievalSet
    val_pairs: pd.DataFrame  # image, query_id of each validation row, aligned with `val`
    test_retrieval: RetrievalSet | None = None


@dataclass(frozen=True)
class SplitSummary:
    train_pairs: int
    val_pairs: int
    train_images: int
    val_images: int
    train_positives: int
    val_queries: int
    test_queries: int


def split_by_image(pairs: pd.DataFrame, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and validation sides; no image is on both."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(pairs, groups=pairs["image"]))
    return np.sort(train_idx), np.sort(val_idx)


def retrieval_set(
    queries: pd.DataFrame, gallery: list[str], text_emb: EmbeddingLookup, image_emb: EmbeddingLookup
) -> RetrievalSet:
    """`queries` has query_id, image (the relevant one) and safe; only queries whose image is in the gallery count."""
    position = {name: k for k, name in enumerate(gallery)}
    queries = queries[queries["image"].isin(position)]
    return RetrievalSet(
        text=text_emb.lookup(queries["query_id"].tolist()),
        image=image_emb.lookup(list(gallery)),
        relevant=queries["image"].map(position).to_numpy(),
        safe=queries["safe"].to_numpy(dtype=bool),
    )


def build_datasets(
    pairs: pd.DataFrame,
    captions: pd.DataFrame,
    text_emb: EmbeddingLookup,
    image_emb: EmbeddingLookup,
    val_fraction: float,
    seed: int,
    test_queries: pd.DataFrame | None = None,
    test_gallery: list[str] | None = None,
    test_image_emb: EmbeddingLookup | None = None,
    expert_pair_weight: float = 1.0,
    held_out_images: set[str] | None = None,
) -> tuple[TrainingData, EvalData, SplitSummary]:
    """Assemble aligned arrays for training and evaluation.

    pairs: image, query_id, target, expert_score (NaN when no expert) — already safety-filtered.
    captions: query_id, image (the image the caption describes), safe — the known, unflagged captions
      whose image is a training image; they feed the contrastive loss and validation retrieval.
    test_queries: query_id, image, safe — evaluated against `test_gallery` (test image names).
    held_out_images: hold out exactly these images (one fold of a cross-validation) instead of a seeded random share.
    """
    pairs = pairs.reset_index(drop=True)
    if held_out_images is None:
        train_idx, val_idx = split_by_image(pairs, val_fraction, seed)
    else:
        held = pairs["image"].isin(held_out_images).to_numpy()
        train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)
    train_pairs, val_pairs = pairs.iloc[train_idx], pairs.iloc[val_idx]
    train_images, val_images = set(train_pairs["image"]), set(val_pairs["image"])

    own = captions[captions["image"].isin(train_images)]
    train = TrainingData(
        text=text_emb.lookup(train_pairs["query_id"].tolist()),
        image=image_emb.lookup(train_pairs["image"].tolist()),
        target=train_pairs["target"].to_numpy(dtype=np.float32),
        groups=train_pairs["image"].to_numpy(),
        positives_text=text_emb.lookup(own["query_id"].tolist()) if len(own) else None,
        positives_image=image_emb.lookup(own["image"].tolist()) if len(own) else None,
        positives_groups=own["image"].to_numpy() if len(own) else None,
        weights=np.where(train_pairs["expert_score"].notna(), expert_pair_weight, 1.0).astype(np.float32),
        expert=train_pairs["expert_score"].notna().to_numpy(),
    )
    val = TrainingData(
        text=text_emb.lookup(val_pairs["query_id"].tolist()),
        image=image_emb.lookup(val_pairs["image"].tolist()),
        target=val_pairs["target"].to_numpy(dtype=np.float32),
        groups=val_pairs["image"].to_numpy(),
    )
    val_gallery = sorted(val_images)
    val_queries = captions[captions["image"].isin(val_images)]
    test = None
    if test_queries is not None and test_gallery is not None and test_image_emb is not None:
        test = retrieval_set(test_queries, test_gallery, text_emb, test_image_emb)
    eval_data = EvalData(
        val=val,
        val_expert=val_pairs["expert_score"].to_numpy(dtype=float),
        val_retrieval=retrieval_set(val_queries, val_gallery, text_emb, image_emb),
        val_pairs=val_pairs[["image", "query_id"]].reset_index(drop=True),
        test_retrieval=test,
    )
    summary = SplitSummary(
        train_pairs=len(train_pairs),
        val_pairs=len(val_pairs),
        train_images=len(train_images),
        val_images=len(val_images),
        train_positives=len(own),
        val_queries=len(eval_data.val_retrieval),
        test_queries=len(test) if test is not None else 0,
    )
    return train, eval_data, summary


def image_folds(images: list[str] | np.ndarray, n_folds: int, seed: int) -> list[set[str]]:
    """Split distinct image names into `n_folds` disjoint, seeded folds of near-equal size (cross-validation)."""
    unique = np.unique(np.asarray(images))
    order = np.random.default_rng(seed).permutation(len(unique))
    return [set(unique[part].tolist()) for part in np.array_split(order, n_folds)]
