"""Our ranking model: text and image embeddings projected into one space, scored by calibrated cosine.

Trained on two signals at once: the ratings (MSE on a calibrated score, so outputs are relevance in
[0, 1]) and a contrastive InfoNCE loss on each image's own captions (so the right image comes
first). Because the score is a function of one text vector and one image vector, retrieval is an
index lookup: gallery vectors are computed once (`embed_images`) and a query is one matrix product.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.training.models.base import TrainingData, write_kind
from tasks.training.models.torch_training import EarlyStopping, Standardizer, holdout_groups, seed_torch, torch_threads


def _network(dt: int, di: int, dim: int, hidden: int, dropout: float):
    import torch
    from torch import nn

    class TwoTowerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text = nn.Sequential(nn.Dropout(dropout), nn.Linear(dt, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.image = nn.Sequential(nn.Dropout(dropout), nn.Linear(di, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.logit_scale = nn.Parameter(torch.tensor(math.log(20.0)))
            # score = sigmoid(a * cosine + b): a monotone map, so it calibrates without changing the ranking
            self.a = nn.Parameter(torch.tensor(6.0))
            self.b = nn.Parameter(torch.tensor(-3.0))

        def embed_text(self, t):
            return nn.functional.normalize(self.text(t), dim=-1)

        def embed_image(self, i):
            return nn.functional.normalize(self.image(i), dim=-1)

        def calibrate(self, cosine):
            return torch.sigmoid(self.a * cosine + self.b)

    return TwoTowerNet()


@dataclass
class _Pool:
    """The contrastive loss's positives (torch rows), with what each text is known to match and its hard negatives."""

    text: Any
    image: Any
    group: np.ndarray  # image name of each positive
    text_id: np.ndarray  # one id per distinct text
    matches: dict[int, set]  # text id -> every image it is known to match
    negatives: dict[int, list[int]]  # text id -> rows of rated non-matching pairs
    negative_image: Any  # image rows of the rated pairs
    negative_group: np.ndarray


def _mrr(text_vecs: np.ndarray, image_vecs: np.ndarray, own: np.ndarray) -> float:
    sims = text_vecs @ image_vecs.T
    target = sims[np.arange(len(own)), own][:, None]
    ranks = 1 + (sims > target).sum(axis=1)
    return float(np.mean(1.0 / ranks))


class TwoTowerModel:
    kind = "two_tower"

    def __init__(
        self,
        dim: int = 128,
        hidden: int = 512,
        dropout: float = 0.3,
        epochs: int = 60,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        contrastive_weight: float = 1.0,
        patience: int = 10,
        rated_positive_threshold: float | None = None,
        hard_negative_threshold: float | None = None,
        ensemble: int = 1,
    ):
        self.dim, self.hidden, self.dropout = dim, hidden, dropout
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.contrastive_weight, self.patience = contrastive_weight, patience
        # rated pairs with a target at or above this join the contrastive positives (None: own captions only)
        self.rated_positive_threshold = rated_positive_threshold
        # rated pairs with a target at or below this are each text's hard negatives in the contrastive loss
        self.hard_negative_threshold = hard_negative_threshold
        # towers trained from consecutive seeds; their unit vectors are concatenated (scaled by 1/sqrt(k)),
        # so one dot product is the mean cosine and retrieval stays a single vector lookup
        self.ensemble = ensemble
        self.nets: list[Any] = []  # the towers
        self.net: Any = None  # the torch module holding the calibration (a, b): the first tower
        self.image_scaler: Any = None  # a Standardizer after fit()
        self.history: list[dict] = []

    # -- inputs ---------------------------------------------------------------------------------
    @staticmethod
    def _text_in(text: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(text, axis=1, keepdims=True)
        return (text / np.maximum(norms, 1e-8)).astype(np.float32)

    def _image_in(self, image: np.ndarray) -> np.ndarray:
        return self.image_scaler(image)

    # -- training -------------------------------------------------------------------------------
    def fit(self, data: TrainingData, seed: int) -> TwoTowerModel:
        import torch

        with torch_threads(1):
            self.image_scaler = Standardizer.fit(
                np.vstack([data.image] + ([data.positives_image] if data.positives_image is not None else []))
            )
            self.nets = [self._fit_one(data, seed + k) for k in range(max(1, self.ensemble))]
            self.net = self.nets[0]
            t = torch.from_numpy(self._text_in(data.text))
            i = torch.from_numpy(self._image_in(data.image))
            self._recalibrate(t, i, torch.from_numpy(data.target.astype(np.float32)))
        return self

    def _fit_one(self, data: TrainingData, seed: int) -> Any:  # noqa: PLR0915 -- one training loop
        import torch
        from torch import nn

        seed_torch(seed)
        held = holdout_groups(data.groups, 0.1, seed)
        t = torch.from_numpy(self._text_in(data.text))
        i = torch.from_numpy(self._image_in(data.image))
        y = torch.from_numpy(data.target.astype(np.float32))
        w = torch.from_numpy((data.weights if data.weights is not None else np.ones(len(y))).astype(np.float32))
        tr = torch.from_numpy(np.flatnonzero(~held))

        have_pos = data.positives_groups is not None and len(np.unique(data.positives_groups)) > 3
        if have_pos:
            assert data.positives_text is not None and data.positives_image is not None
            pos_groups = np.asarray(data.positives_groups)
            pos_t = torch.from_numpy(self._text_in(data.positives_text))
            pos_i = torch.from_numpy(self._image_in(data.positives_image))
            # positives whose image is in the rating hold-out stay out of training too
            held_images = set(data.groups[held].tolist())
            pos_held = np.array([g in held_images for g in pos_groups])
            if pos_held.sum() < 2 or (~pos_held).sum() < 2:
                pos_held = np.zeros(len(pos_groups), dtype=bool)
                pos_held[: max(2, len(pos_groups) // 10)] = True
            # validation retrieval: each held-out caption against the held-out images
            val_images, own = np.unique(pos_groups[pos_held], return_inverse=True)
            first_of = {g: k for k, g in enumerate(pos_groups) if pos_held[k]}
            val_image_rows = torch.from_numpy(np.array([first_of[g] for g in val_images]))
            val_text_rows = torch.from_numpy(np.flatnonzero(pos_held))
            pool = self._contrastive_pool(data, held, pos_held)

        net = _network(t.shape[1], i.shape[1], self.dim, self.hidden, self.dropout)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        stopper = EarlyStopping(self.patience, min_delta=1e-4)
        steps = max(1, math.ceil(len(tr) / self.batch_size))
        for epoch in range(self.epochs):
            net.train()
            order = tr[torch.randperm(len(tr), generator=generator)]
            for idx in order.split(self.batch_size):
                optimizer.zero_grad()
                cosine = (net.embed_text(t[idx]) * net.embed_image(i[idx])).sum(-1)
                loss = (w[idx] * (net.calibrate(cosine) - y[idx]) ** 2).sum() / w[idx].sum()
                if have_pos and self.contrastive_weight > 0:
                    loss = loss + self.contrastive_weight * self._info_nce(net, pool, rng)
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                cosine = (net.embed_text(t[held]) * net.embed_image(i[held])).sum(-1)
                val_mse = float(nn.functional.mse_loss(net.calibrate(cosine), y[held]))
                val_mrr = (
                    _mrr(
                        net.embed_text(pos_t[val_text_rows]).numpy(),
                        net.embed_image(pos_i[val_image_rows]).numpy(),
                        own,
                    )
                    if have_pos
                    else 0.0
                )
            # rank first, calibration second: MSE only breaks ties between epochs of equal ranking
            quality = val_mrr - val_mse
            self.history.append({"seed": seed, "epoch": epoch, "val_mse": val_mse, "val_mrr": val_mrr, "steps": steps})
            if stopper.update(quality, net):
                break
        stopper.restore(net)
        return net

    def _contrastive_pool(self, data: TrainingData, held: np.ndarray, pos_held: np.ndarray) -> _Pool:
        """The (text, image) positives of the contrastive loss outside the hold-out, and what each text must not
        be pushed away from: every image it is known to match. Own captions always; rated matches and rated
        non-matches (hard negatives) when their thresholds are set."""
        assert data.positives_text is not None and data.positives_image is not None
        pos_groups = np.asarray(data.positives_groups)
        keep = ~pos_held
        texts = [data.positives_text[keep]]
        images = [data.positives_image[keep]]
        groups = [pos_groups[keep]]
        rated = ~held
        if self.rated_positive_threshold is not None:
            match = rated & (data.target >= self.rated_positive_threshold)
            texts.append(data.text[match])
            images.append(data.image[match])
            groups.append(data.groups[match])
        text = np.vstack(texts)
        # a text is known by its embedding row: the same caption in the captions and in the ratings is one text
        _, text_id = np.unique(np.vstack([text, data.text]), axis=0, return_inverse=True)
        text_id = text_id.reshape(-1)
        pool_ids, rating_ids = text_id[: len(text)], text_id[len(text) :]
        group = np.concatenate(groups)
        matches: dict[int, set] = {}
        for tid, g in zip(pool_ids.tolist(), group.tolist(), strict=True):
            matches.setdefault(tid, set()).add(g)
        if self.rated_positive_threshold is not None:
            # rated matches of held-out images must not become negatives either
            for tid, g in zip(
                rating_ids[data.target >= self.rated_positive_threshold].tolist(),
                data.groups[data.target >= self.rated_positive_threshold].tolist(),
                strict=True,
            ):
                matches.setdefault(tid, set()).add(g)
        negatives: dict[int, list[int]] = {}
        if self.hard_negative_threshold is not None:
            for row in np.flatnonzero(rated & (data.target <= self.hard_negative_threshold)).tolist():
                negatives.setdefault(int(rating_ids[row]), []).append(row)
        return _Pool(
            text=self._torch(self._text_in(text)),
            image=self._torch(self._image_in(np.vstack(images))),
            group=group,
            text_id=pool_ids,
            matches=matches,
            negatives=negatives,
            negative_image=self._torch(self._image_in(data.image)),
            negative_group=data.groups,
        )

    @staticmethod
    def _torch(array: np.ndarray):
        import torch

        return torch.from_numpy(array)

    def _recalibrate(self, t, i, y) -> None:
        """Refit only a and b on all rating pairs: the ranking stays, the scores become calibrated."""
        import torch

        with torch.no_grad():
            cosine = self._cosine_t(t, i)
        optimizer = torch.optim.LBFGS([self.net.a, self.net.b], lr=0.5, max_iter=100)

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net.calibrate(cosine), y)
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            self.net.a.clamp_(min=1e-3)  # keep the map increasing, so ranking is unchanged

    def _cosine_t(self, t, i):
        """Mean cosine of the towers for aligned rows (torch)."""
        return sum((net.embed_text(t) * net.embed_image(i)).sum(-1) for net in self.nets) / len(self.nets)

    def _info_nce(self, net, pool: _Pool, rng: np.random.Generator):
        import torch
        from torch import nn

        # one positive per image in a batch; a pair of the batch that is a known match is left out of the
        # negatives rather than pushed apart
        batch, seen = [], set()
        for k in rng.permutation(len(pool.group)):
            if pool.group[k] not in seen:
                seen.add(pool.group[k])
                batch.append(k)
                if len(batch) == self.batch_size:
                    break
        idx = torch.from_numpy(np.array(batch))
        groups = pool.group[batch]
        ids = pool.text_id[batch]
        known = np.zeros((len(batch), len(batch)), dtype=bool)
        column = {g: b for b, g in enumerate(groups.tolist())}
        for a, tid in enumerate(ids.tolist()):
            for g in pool.matches.get(tid, ()):  # one image (its own) unless rated matches were added
                b = column.get(g)
                if b is not None and b != a:
                    known[a, b] = True
        text = net.embed_text(pool.text[idx])
        image = net.embed_image(pool.image[idx])
        scale = net.logit_scale.exp().clamp(max=100)
        logits = scale * text @ image.T
        mask = torch.from_numpy(known)
        logits = logits.masked_fill(mask, -1e4)
        labels = torch.arange(len(idx))
        text_logits = logits
        hard = [rng.choice(pool.negatives[tid]) if tid in pool.negatives else -1 for tid in ids.tolist()]
        have = [k for k, row in enumerate(hard) if row >= 0]
        if have:
            rows = torch.from_numpy(np.array([hard[k] for k in have]))
            hard_image = net.embed_image(pool.negative_image[rows])
            extra = torch.full((len(idx), len(have)), -1e4)
            extra[have, torch.arange(len(have))] = scale * (text[have] * hard_image).sum(-1)
            text_logits = torch.cat([logits, extra], dim=1)
        return (nn.functional.cross_entropy(text_logits, labels) + nn.functional.cross_entropy(logits.T, labels)) / 2

    # -- scoring --------------------------------------------------------------------------------
    def embed_texts(self, text: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(self._text_in(text))
            return self._join([net.embed_text(x).numpy() for net in self.nets])

    def embed_images(self, image: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(self._image_in(image))
            return self._join([net.embed_image(x).numpy() for net in self.nets])

    @staticmethod
    def _join(vectors: list[np.ndarray]) -> np.ndarray:
        """One unit vector per row whose dot products are the towers' mean cosine."""
        if len(vectors) == 1:
            return vectors[0]
        return (np.hstack(vectors) / np.sqrt(len(vectors))).astype(np.float32)

    def calibrate(self, cosine: np.ndarray) -> np.ndarray:
        a, b = float(self.net.a.detach()), float(self.net.b.detach())
        return (1.0 / (1.0 + np.exp(-(a * cosine + b)))).astype(np.float32)

    def predict(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return self.calibrate((self.embed_texts(text) * self.embed_images(image)).sum(axis=1))

    def score_matrix(self, text: np.ndarray, image: np.ndarray) -> np.ndarray:
        return self.calibrate(self.embed_texts(text) @ self.embed_images(image).T)

    # -- persistence ----------------------------------------------------------------------------
    def _config(self) -> dict:
        keys = (
            "dim",
            "hidden",
            "dropout",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "contrastive_weight",
            "patience",
            "rated_positive_threshold",
            "hard_negative_threshold",
            "ensemble",
        )
        return {k: getattr(self, k) for k in keys}

    def save(self, directory: Path) -> None:
        import torch

        directory = Path(directory)
        torch.save(self.net.state_dict(), directory / "two_tower.pt")
        for k, net in enumerate(self.nets[1:], start=1):
            torch.save(net.state_dict(), directory / f"two_tower_{k}.pt")
        np.savez(directory / "image_scaler.npz", mean=self.image_scaler.mean, std=self.image_scaler.std)
        dims = {"dt": int(self.net.text[1].in_features), "di": int(self.net.image[1].in_features)}
        (directory / "two_tower.json").write_text(json.dumps({**self._config(), **dims}, indent=2))
        write_kind(directory, self.kind)

    @classmethod
    def load(cls, directory: Path) -> TwoTowerModel:
        import torch

        directory = Path(directory)
        meta = json.loads((directory / "two_tower.json").read_text())
        dt, di = meta.pop("dt"), meta.pop("di")
        model = cls(**meta)
        model.net = _network(dt, di, model.dim, model.hidden, model.dropout)
        model.net.load_state_dict(torch.load(directory / "two_tower.pt", weights_only=True))
        model.net.eval()
        model.nets = [model.net]
        for k in range(1, model.ensemble):
            net = _network(dt, di, model.dim, model.hidden, model.dropout)
            net.load_state_dict(torch.load(directory / f"two_tower_{k}.pt", weights_only=True))
            model.nets.append(net.eval())
        scaler = np.load(directory / "image_scaler.npz")
        model.image_scaler = Standardizer(scaler["mean"], scaler["std"])
        return model
