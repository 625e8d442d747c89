"""The original study's model: an MLP over concatenated text and image embeddings.

One hidden layer, ReLU, dropout 0.4, Adam with lr 1e-3, MSE loss — as in the study, so that our
own models are compared against a faithful baseline. Early stopping on held-out images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tasks.training.models.base import TrainingData, concat_features, pairwise_score_matrix, write_kind
from tasks.training.models.torch_training import EarlyStopping, Standardizer, holdout_groups, seed_torch, torch_threads


def _network(n_in: int, hidden: int):
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.4), nn.Linear(hidden, 1))


class StudyMLP:
    kind = "study_mlp"

    def __init__(self, hidden: int = 512, epochs: int = 60, batch_size: int = 64, lr: float = 1e-3, patience: int = 8):
        self.hidden, self.epochs, self.batch_size, self.lr, self.patience = hidden, epochs, batch_size, lr, patience
        self.net: Any = None  # the torch module, built in fit() or load()
        self.scaler: Any = None  # a Standardizer after fit()
        self.history: list[float] = []

    def fit(self, data: TrainingData, seed: int) -> StudyMLP:
        with torch_threads(1):
            return self._fit(data, seed)

    def _fit(self, data: TrainingData, seed: int) -> StudyMLP:
        import torch

        seed_torch(seed)
        features = concat_features(data.text, data.image)
        held = holdout_groups(data.groups, 0.1, seed)
        self.scaler = Standardizer.fit(features[~held])
        x = torch.from_numpy(self.scaler(features))
        y = torch.from_numpy(data.target.astype(np.float32))
        x_tr, y_tr, x_va, y_va = x[~held], y[~held], x[held], y[held]
        self.net = _network(x.shape[1], self.hidden)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(seed)
        stopper = EarlyStopping(self.patience, min_delta=1e-5)
        for _ in range(self.epochs):
            self.net.train()
            for idx in torch.randperm(len(x_tr), generator=generator).split(self.batch_size):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(self.net(x_tr[idx]).squeeze(1), y_tr[idx])
                loss.backward()
                optimizer.step()
            self.net.eval()
            with torch.no_grad():
                val = float(torch.nn.functional.mse_loss(self.net(x_va).squeeze(1), y_va))
            self.history.append(val)
            if stopper.update(-val, self.net):
                break
        stopper.restore(self.net)
        return self

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.net(torch.from_numpy(self.scaler(concat_features(text, image)))).squeeze(1).numpy()
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return pairwise_score_matrix(self, text, image)

    def save(self, directory: Path) -> None:
        import torch

        directory = Path(directory)
        torch.save(self.net.state_dict(), directory / "mlp.pt")
        np.savez(directory / "scaler.npz", mean=self.scaler.mean, std=self.scaler.std)
        (directory / "mlp.json").write_text(json.dumps({"hidden": self.hidden, "n_in": int(self.scaler.mean.shape[0])}))
        write_kind(directory, self.kind)

    @classmethod
    def load(cls, directory: Path) -> StudyMLP:
        import torch

        directory = Path(directory)
        meta = json.loads((directory / "mlp.json").read_text())
        model = cls(hidden=meta["hidden"])
        model.net = _network(meta["n_in"], meta["hidden"])
        model.net.load_state_dict(torch.load(directory / "mlp.pt", weights_only=True))
        model.net.eval()
        scaler = np.load(directory / "scaler.npz")
        model.scaler = Standardizer(scaler["mean"], scaler["std"])
        return model
