"""Metrics: regression error, agreement with experts, and retrieval quality with exact tie handling."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma
from scipy.stats import kendalltau

RETRIEVAL_KEYS = ("r1", "r5", "r10", "mrr", "ndcg10")
# The metrics a comparison table and a model card show: error, expert agreement, validation and test retrieval.
SHOWN_METRICS = (
    "rmse",
    "mae",
    "tau_c",
    "val_r1",
    "val_mrr",
    "r1",
    "r5",
    "r10",
    "mrr",
    "ndcg10",
    "safe_r1",
    "safe_mrr",
    "safe_ndcg10",
)


# One line per column of the comparison table; a prefix says which queries and images a retrieval column uses.
COLUMN_EXPLANATIONS = {
    "rmse": "root mean squared error of the predicted score against the target on validation pairs (lower is better)",
    "mae": "mean absolute error of the predicted score against the target on validation pairs (lower is better)",
    "tau_c": "Kendall's tau-c between predicted scores and the mean expert score on expert-rated validation pairs "
    "(1 = same order, 0 = unrelated)",
    "r1": "Recall@1: share of queries whose own image is ranked first",
    "r5": "Recall@5: share of queries whose own image is among the top 5",
    "r10": "Recall@10: share of queries whose own image is among the top 10",
    "mrr": "mean reciprocal rank of each query's own image (1 = always first)",
    "ndcg10": "NDCG@10: rank quality of the own image within the top 10, discounted by log of its rank",
}
PREFIX_EXPLANATIONS = {
    "": "no prefix: test captions searched against the test images",
    "val_": "val_: validation captions against validation images (the run picks its best model on these)",
    "safe_": "safe_: only the test captions that pass the child-content screen",
}


def explain_column(column: str) -> str:
    """A one-line explanation of a metric column, its prefix included."""
    for prefix in ("val_", "safe_"):
        if column.startswith(prefix) and column[len(prefix) :] in COLUMN_EXPLANATIONS:
            where = "validation captions and images" if prefix == "val_" else "test captions that pass the screen"
            return f"{COLUMN_EXPLANATIONS[column[len(prefix) :]]}; on {where}"
    if column in RETRIEVAL_KEYS:
        return f"{COLUMN_EXPLANATIONS[column]}; on test captions and test images"
    return COLUMN_EXPLANATIONS.get(column, column)


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


def recall_at(higher: np.ndarray, ties: np.ndarray, k: int) -> float:
    """Recall@k from `relevant_ranks`: the mean share of the equally likely ranks h+1 .. h+t+1 that are <= k."""
    return float(np.mean(np.clip(k - higher, 0, ties + 1) / (ties + 1)))


def recall_curve(scores: np.ndarray, relevant: np.ndarray, max_k: int = 10) -> list[float]:
    """Recall@1 .. Recall@max_k with one relevant image per query, ties at random (as `retrieval_metrics`)."""
    if len(relevant) == 0:
        return [float("nan")] * max_k
    higher, ties = relevant_ranks(np.asarray(scores, dtype=np.float64), np.asarray(relevant))
    return [recall_at(higher, ties, k) for k in range(1, max_k + 1)]


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H(n) = 1 + 1/2 + ... + 1/n (H(0) = 0), for arrays of whole numbers."""
    return digamma(np.asarray(n, dtype=np.float64) + 1.0) + np.euler_gamma


def reciprocal_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per query, the expected 1/rank of its relevant image when ties are broken at random.

    With h images above it and t tied with it, the rank is uniform on h+1 .. h+t+1, so the
    expectation is (H(h+t+1) - H(h)) / (t+1).
    """
    higher, ties = relevant_ranks(np.asarray(scores, dtype=np.float64), np.asarray(relevant))
    return (_harmonic(higher + ties + 1) - _harmonic(higher)) / (ties + 1)


def mean_reciprocal_rank(scores: np.ndarray, relevant: np.ndarray) -> float:
    """MRR with one relevant image per query (row q's relevant column is `relevant[q]`), ties at random."""
    return float(np.mean(reciprocal_ranks(scores, relevant))) if len(relevant) else float("nan")


def ndcg_at_10(scores: np.ndarray, relevant: np.ndarray) -> float:
    """NDCG@10 with one relevant image per query: `sklearn.metrics.ndcg_score`.

    sklearn averages the gain over a tied group of scores (`ignore_ties=False`), which equals the
    expectation over random tie-breaking that the other metrics use (the tests check it on ties).
    """
    from sklearn.metrics import ndcg_score

    n_queries, n_images = scores.shape
    if n_images == 1:  # sklearn refuses a one-document list; the only image is at rank 1
        return 1.0
    truth = np.zeros((n_queries, n_images))
    truth[np.arange(n_queries), relevant] = 1.0
    return float(ndcg_score(truth, scores, k=10))


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
    recall = {f"r{k}": recall_at(higher, ties, k) for k in (1, 5, 10)}
    return recall | {"mrr": mean_reciprocal_rank(scores, relevant), "ndcg10": ndcg_at_10(scores, relevant)}


def random_scores(n_queries: int, n_images: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n_queries, n_images))
