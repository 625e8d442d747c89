"""Small shared pieces for the torch models: seeding, input scaling, holding out groups for early stopping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Train small models on one thread: their matrices are too small to gain from more, and OpenMP
    threads that spin-wait on a busy machine made one training step 13x slower (48 ms vs 632 ms)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@dataclass
class Standardizer:
    """Per-column mean/std scaling, fitted on training rows and saved with the model."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        return cls(x.mean(axis=0).astype(np.float32), (x.std(axis=0) + 1e-6).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


def holdout_groups(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose group (image) is held out, so early stopping never sees a training image."""
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    _, held = next(splitter.split(groups, groups=groups))
    mask = np.zeros(len(groups), dtype=bool)
    mask[held] = True
    return mask


class EarlyStopping:
    """Keeps the best weights seen so far (higher `quality` is better) and says when to stop."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.waited = -float("inf"), 0
        self.best_state: dict | None = None

    def update(self, quality: float, net) -> bool:
        """Record one epoch; True when `patience` epochs passed without improvement."""
        if quality > self.best + self.min_delta:
            self.best, self.waited = quality, 0
            self.best_state = {k: v.clone() for k, v in net.state_dict().items()}
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, net) -> None:
        net.load_state_dict(self.best_state)
        net.eval()
