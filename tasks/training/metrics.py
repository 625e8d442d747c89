"""Metrics: regression error, agreement with experts, and retrieval quality with exact tie handling."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

RETRIEVAL_KEYS = ("r1", "r5", "r10", "mrr", "ndcg10")


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    err = np.asarray(pred, dtype=float) - np.asarray(target, dtype=float)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def kendall_tau_c(pred: np.ndarray, expert: np.ndarray) -> float:
    """Kendall's tau-c between predictions and mean expert scores (NaN experts are left out)."""
    pred, expert = np.asarray(pred, dtype=float), np.asarray(expert, dtype=float)
    keep = ~np.isnan(expert)
    if keep.sum() < 3 or np.unique(pred[keep]).size < 2:
        return 0.0
    return float(kendalltau(pred[keep], expert[keep], variant="c").statistic)


def relevant_ranks(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query: how many images score strictly higher than its relevant one, and how many tie with it."""
    own = scores[np.arange(len(relevant)), relevant][:, None]
    higher = (scores > own).sum(axis=1)
    ties = (scores == own).sum(axis=1) - 1
    return higher, ties


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Recall@1/5/10, MRR and NDCG@10 with one relevant image per query.

    Ties are broken at random in expectation (exactly, not by sampling), so a constant scorer gets
    the chance level rather than a perfect score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant)
    if len(relevant) == 0:
        return {k: float("nan") for k in RETRIEVAL_KEYS}
    higher, ties = relevant_ranks(scores, relevant)
    totals = {k: 0.0 for k in RETRIEVAL_KEYS}
    for h, t in zip(higher, ties, strict=True):
        ranks = np.arange(h + 1, h + t + 2, dtype=np.float64)  # equally likely ranks
        totals["r1"] += float(np.mean(ranks <= 1))
        totals["r5"] += float(np.mean(ranks <= 5))
        totals["r10"] += float(np.mean(ranks <= 10))
        totals["mrr"] += float(np.mean(1.0 / ranks))
        totals["ndcg10"] += float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0)))
    return {k: float(v / len(relevant)) for k, v in totals.items()}


def random_scores(n_queries: int, n_images: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n_queries, n_images))
