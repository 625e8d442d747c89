"""Our ranking model: text and image embeddings in one space, scored by calibrated cosine.

By default the text side is locked (`text_tower="identity"`): a query is the text encoder's own normalised
vector, and an MLP maps the image features into that space. Keeping the pretrained text geometry ranked
better than projecting both sides (practicum-dev, 5 group folds x 2 seeds: Kendall tau-c 0.559 against 0.509,
fold MRR 0.416 against 0.396; bench/results/quality-minilm-l6+efficientnet-lite2-locked-text.md). `dim` is then
unused: the shared space has the text encoder's dimension.

Trained on two signals at once: the ratings (MSE on a calibrated score, so outputs are relevance in
[0, 1]) and a contrastive InfoNCE loss on each image's own captions (so the right image comes
first). Because the score is a function of one text vector and one image vector, retrieval is an
index lookup: gallery vectors are computed once (`embed_images`) and a query is one matrix product.

After training only the score's sigmoid(a * cosine + b) is refitted, on every rated pair or on the expert-rated
ones (`calibrate_on`); `members` > 1 trains networks from other seeds and scores their mean cosine, still one
vector per image and per query.

An image's vector also gains what people wrote about the training photos most like it (`neighbours`,
`CaptionMemory`): the similarity-weighted mean of the own captions of its nearest training images, in the same
space. Still one vector per image, computed once with the gallery.

An image that looks like captions in general (a hub) is lowered by `hub_penalty` times its mean cosine with its
`hub_neighbours` nearest training captions (`CaptionMemory.hubness`). The term is one more entry of the gallery
vector, met by a 1 at the end of every query vector, so a score is still one inner product.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.training.metrics import mean_reciprocal_rank
from tasks.training.models.base import TrainingData, write_kind
from tasks.training.models.torch_training import EarlyStopping, Standardizer, holdout_groups, seed_torch, torch_threads

TEXT_TOWERS = ("mlp", "linear", "identity")
IMAGE_TOWERS = ("mlp", "linear")
# What the score sigmoid(a * cosine + b) is fitted to after training: every rated pair's target ("ratings": most
# pairs are crowd votes, so a score reads as the share of crowd raters who would say yes), or the expert-rated pairs
# only ("experts": the experts' mean score, when the training split holds at least MIN_EXPERT_PAIRS of them).
CALIBRATIONS = ("ratings", "experts")
MIN_EXPERT_PAIRS = 50
SIMILARITY_CELLS = 1 << 24  # float32 cells of one step of a caption-memory lookup (64 MB)


def _network(dt: int, di: int, dim: int, hidden: int, dropout: float, text_tower: str, image_tower: str):
    """The two towers. `identity` (text only) keeps the text encoder's own space and the image side is mapped
    into it (a locked text tower, as in LiT); `linear` is one linear layer, `mlp` one hidden GELU layer."""
    import torch
    from torch import nn

    out = dt if text_tower == "identity" else dim

    def tower(kind: str, d_in: int) -> nn.Module:
        if kind == "identity":
            return nn.Identity()
        if kind == "linear":
            return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, out))
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, out))

    class TwoTowerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text = tower(text_tower, dt)
            self.image = tower(image_tower, di)
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


def _ensemble(members: list, locked_text: bool):
    """Member networks (the same towers, other seeds) scored by their mean cosine, so a query is still one dot
    product with one stored vector per image. With a locked text tower every member embeds a text the same way,
    so an image's vector is the mean of its members' unit vectors (the text encoder's dimension, not normalised);
    otherwise both sides are the members' unit vectors side by side over sqrt(members)."""
    import torch
    from torch import nn

    class EnsembleNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            self.a = nn.Parameter(torch.stack([m.a.detach() for m in members]).mean())
            self.b = nn.Parameter(torch.stack([m.b.detach() for m in members]).mean())

        def each(self) -> list[Any]:
            return list(self.members)

        def embed_text(self, t):
            if locked_text:
                return self.each()[0].embed_text(t)
            return torch.cat([m.embed_text(t) for m in self.each()], dim=-1) / math.sqrt(len(self.members))

        def embed_image(self, i):
            if locked_text:
                return torch.stack([m.embed_image(i) for m in self.each()]).mean(0)
            return torch.cat([m.embed_image(i) for m in self.each()], dim=-1) / math.sqrt(len(self.members))

        def calibrate(self, cosine):
            return torch.sigmoid(self.a * cosine + self.b)

    return EnsembleNet()


@dataclass(frozen=True)
class _Positives:
    """(caption, own image) rows as tensors: `train_rows` feed InfoNCE, the `val_` rows score validation MRR."""

    text: Any
    image: Any
    groups: np.ndarray  # the image of each row
    train_rows: np.ndarray
    val_text_rows: Any
    val_image_rows: Any
    val_own: np.ndarray  # per validation caption, its image's position among `val_image_rows`


@dataclass(frozen=True)
class CaptionMemory:
    """The training images' own captions, looked up by how much an image looks like each training image.

    `lookup` gives, per image, the softmax(similarity / temperature)-weighted mean of the captions of its `k`
    nearest training images (cosine of the standardised image features), normalised: a non-parametric image to
    text map beside the trained one. On practicum-dev it adds test MRR +0.046 / +0.038 and fold MRR +0.044 /
    +0.037 to the three-network two-tower (5 folds x fold seeds 0-1 / 2-3; README, "Caption neighbours").
    """

    image: np.ndarray  # unit rows: the standardised features of each caption's image
    text: np.ndarray  # unit rows: each caption as the model embeds a text
    groups: np.ndarray  # each row's image, as integer codes (a training image leaves its own captions out)

    def lookup(
        self, image: np.ndarray, k: int, temperature: float, exclude: np.ndarray | None = None, chunk: int = 0
    ) -> np.ndarray:
        """Caption vectors for `image` (unit rows, standardised features). Where `exclude` is given (an image code
        per row) a row ignores the memory's captions of that image. A row with nothing left to look up gets zeros."""
        out = np.zeros((len(image), self.text.shape[1]), dtype=np.float32)
        k = min(k, len(self.text))
        for start, sim in self._similarities(image, self.image, exclude, chunk):
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            logits = np.take_along_axis(sim, top, axis=1) / temperature
            best = logits.max(axis=1, keepdims=True)
            ok = np.isfinite(best[:, 0])
            weights = np.exp(logits[ok] - best[ok])
            weights /= weights.sum(axis=1, keepdims=True)
            out[start : start + len(sim)][ok] = unit(np.einsum("gk,gkd->gd", weights, self.text[top[ok]]))
        return out

    def hubness(self, vectors: np.ndarray, k: int, exclude: np.ndarray | None = None, chunk: int = 0) -> np.ndarray:
        """Per row of `vectors` (gallery vectors), the mean of its `k` highest similarities to the memory's
        captions: how much the row looks like captions in general. Where `exclude` is given (an image code per row)
        a row ignores the memory's captions of that image; a row with nothing left gets 0."""
        out = np.zeros(len(vectors), dtype=np.float32)
        k = min(k, len(self.text))
        for start, sim in self._similarities(vectors, self.text, exclude, chunk):
            top = -np.partition(-sim, k - 1, axis=1)[:, :k]
            finite = np.isfinite(top)
            out[start : start + len(sim)] = np.where(finite, top, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
        return out

    def _similarities(
        self, rows: np.ndarray, memory: np.ndarray, exclude: np.ndarray | None, chunk: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, similarities of a step of `rows` to every memory row) a step, with -inf where `exclude`
        names the memory row's image. Rows a step: its matrix stays near 64 MB however large the memory."""
        chunk = chunk or max(1, SIMILARITY_CELLS // len(memory))
        for start in range(0, len(rows), chunk):
            sim = rows[start : start + chunk] @ memory.T
            if exclude is not None:
                sim[exclude[start : start + chunk, None] == self.groups[None, :]] = -np.inf
            yield start, sim

    def save(self, path: Path) -> None:
        np.savez(path, image=self.image, text=self.text, groups=self.groups)

    @classmethod
    def load(cls, path: Path) -> CaptionMemory:
        stored = np.load(path)
        return cls(stored["image"], stored["text"], stored["groups"])


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), as float32."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)).astype(np.float32)


@dataclass(frozen=True)
class MemberInputs:
    """What training one member network reads (tensors; shared, not copied, with a worker process)."""

    text: Any
    image: Any
    target: Any
    weights: Any
    train_rows: Any
    held: np.ndarray  # rated rows whose image is held out for early stopping
    positives: _Positives | None


@dataclass(frozen=True)
class MemberResult:
    state: dict  # the member network's trained weights
    history: list[dict]  # its validation figures per epoch


def train_member(config: dict, dims: tuple[int, int], inputs: MemberInputs, seed: int) -> MemberResult:
    """Train one member network of a two-tower model with this `config` (its constructor arguments), on one
    thread: a function of its arguments alone, so it gives the same weights in a worker process as in this one."""
    model = TwoTowerModel(**config)
    model.dims = dims
    with torch_threads(1):
        net = model._fit_member(inputs, seed)
    return MemberResult({k: v.detach().clone() for k, v in net.state_dict().items()}, model.history)


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
        # Epochs without a better held-out score before a member stops (the best epoch is kept). On practicum-dev
        # the best epoch is the first or nearly so: with 10 a member trained 11 epochs to keep the first. With 3,
        # 5 folds x 2 seeds give the same means (test MRR 0.449 vs 0.448, tau-c 0.575 vs 0.576; 6 of the 10 fold
        # models the same to 3 decimals) in a third of the time (`bench/quality.py`, README).
        patience: int = 3,
        text_tower: str = "identity",
        image_tower: str = "mlp",
        calibrate_on: str = "ratings",
        members: int = 3,
        # Caption neighbours (`CaptionMemory`): how many nearest training images' captions join an image's vector
        # (0: none), their weight beside the network's vector, and the softmax temperature over their
        # similarities. Chosen on practicum-dev's folds (README, "Caption neighbours").
        neighbours: int = 50,
        neighbour_weight: float = 2.0,
        neighbour_temperature: float = 0.2,
        # Hubness: an image's score is lowered by `hub_penalty` times the mean of its `hub_neighbours` highest
        # cosines with the training captions, so an image that looks like every caption stops coming first for
        # all of them (the target side of CSLS). Needs the caption memory; chosen on practicum-dev's folds (README,
        # "Hubness").
        hub_penalty: float = 0.25,
        hub_neighbours: int = 20,
    ):
        if text_tower not in TEXT_TOWERS or image_tower not in IMAGE_TOWERS:
            raise ValueError(
                f"text_tower must be one of {TEXT_TOWERS} and image_tower one of {IMAGE_TOWERS}, "
                f"not {text_tower!r} / {image_tower!r}"
            )
        self.dim, self.hidden, self.dropout = dim, hidden, dropout
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.contrastive_weight, self.patience = contrastive_weight, patience
        if calibrate_on not in CALIBRATIONS:
            raise ValueError(f"calibrate_on must be one of {CALIBRATIONS}, not {calibrate_on!r}")
        if members < 1:
            raise ValueError(f"members must be at least 1, not {members}")
        self.text_tower, self.image_tower, self.calibrate_on = text_tower, image_tower, calibrate_on
        self.members = members  # networks trained with other seeds and scored by their mean cosine
        if neighbours < 0 or neighbour_weight < 0 or neighbour_temperature <= 0:
            raise ValueError(
                "neighbours and neighbour_weight must be at least 0 and neighbour_temperature above 0, not "
                f"{neighbours}, {neighbour_weight}, {neighbour_temperature}"
            )
        self.neighbours, self.neighbour_weight = neighbours, neighbour_weight
        self.neighbour_temperature = neighbour_temperature
        if hub_penalty < 0 or hub_neighbours < 1:
            raise ValueError(
                f"hub_penalty must be at least 0 and hub_neighbours at least 1, not {hub_penalty}, {hub_neighbours}"
            )
        self.hub_penalty, self.hub_neighbours = hub_penalty, hub_neighbours
        self.memory: CaptionMemory | None = None  # the training captions, after fit() or load()
        self.dims: tuple[int, int] = (0, 0)  # (text, image) input dimensions, set in fit() or load()
        self.net: Any = None  # the torch module, built in fit() or load()
        self.image_scaler: Any = None  # a Standardizer after fit()
        self.history: list[dict] = []

    # -- inputs ---------------------------------------------------------------------------------
    @staticmethod
    def _text_in(text: np.ndarray) -> np.ndarray:
        return unit(text)

    def _image_in(self, image: np.ndarray) -> np.ndarray:
        return self.image_scaler(image)

    # -- training -------------------------------------------------------------------------------
    def fit(self, data: TrainingData, seed: int) -> TwoTowerModel:
        parts, finish = self.fit_parts(data, seed)
        return finish([part() for part in parts])

    def fit_parts(
        self, data: TrainingData, seed: int
    ) -> tuple[list[Callable[[], MemberResult]], Callable[[list[MemberResult]], TwoTowerModel]]:
        """The fit as independent pieces: one call per member network (picklable, so worker processes can train
        members side by side), and `finish`, which assembles their results in order and recalibrates. Calling
        every piece here and `finish` on the results is `fit`; where each piece runs does not change the model."""
        import torch

        seed_torch(seed)
        self.history = []
        self.image_scaler = Standardizer.fit(
            np.vstack([data.image] + ([data.positives_image] if data.positives_image is not None else []))
        )
        held = holdout_groups(data.groups, 0.1, seed)
        t = torch.from_numpy(self._text_in(data.text))
        i = torch.from_numpy(self._image_in(data.image))
        self.dims = (int(t.shape[1]), int(i.shape[1]))
        inputs = MemberInputs(
            text=t,
            image=i,
            target=torch.from_numpy(data.target.astype(np.float32)),
            weights=torch.from_numpy(
                (data.weights if data.weights is not None else np.ones(len(data.target))).astype(np.float32)
            ),
            train_rows=torch.from_numpy(np.flatnonzero(~held)),
            held=held,
            positives=self._positives(data, held),
        )
        calibration_rows = torch.from_numpy(self._calibration_rows(data))
        codes = {name: code for code, name in enumerate(np.unique(data.groups))}
        calibration_groups = np.array([codes[g] for g in data.groups[calibration_rows.numpy()]], dtype=np.int64)
        config, dims = self._config(), self.dims
        parts: list[Callable[[], MemberResult]] = [
            functools.partial(train_member, config, dims, inputs, seed + 1000 * m) for m in range(self.members)
        ]

        def finish(results: list[MemberResult]) -> TwoTowerModel:
            nets = []
            for result in results:
                net = self._member_network()
                net.load_state_dict(result.state)
                nets.append(net.eval())
                self.history.extend(result.history)
            self.net = nets[0] if self.members == 1 else _ensemble(nets, self.text_tower == "identity").eval()
            rows = calibration_rows
            with torch_threads(1):
                self.memory = self._caption_memory(data, codes)
                # a training image's own captions are in the memory: calibrate as for an image never seen
                self._recalibrate(inputs.text[rows], inputs.image[rows], inputs.target[rows], calibration_groups)
            return self

        return parts, finish

    def _fit_member(self, inputs: MemberInputs, seed: int):
        """One network trained from its own seed, stopped early on the held-out part; left in `self.net`."""
        import torch

        t, i, y, w, tr, held, positives = (
            inputs.text,
            inputs.image,
            inputs.target,
            inputs.weights,
            inputs.train_rows,
            inputs.held,
            inputs.positives,
        )
        seed_torch(seed)
        self.net = self._member_network()
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        stopper = EarlyStopping(self.patience, min_delta=1e-4)
        steps = max(1, math.ceil(len(tr) / self.batch_size))
        for epoch in range(self.epochs):
            self.net.train()
            for idx in tr[torch.randperm(len(tr), generator=generator)].split(self.batch_size):
                optimizer.zero_grad()
                cosine = (self.net.embed_text(t[idx]) * self.net.embed_image(i[idx])).sum(-1)
                loss = (w[idx] * (self.net.calibrate(cosine) - y[idx]) ** 2).sum() / w[idx].sum()
                if positives is not None and self.contrastive_weight > 0:
                    loss = loss + self.contrastive_weight * self._info_nce(positives, rng)
                loss.backward()
                optimizer.step()
            val_mse, val_mrr = self._validate(t[held], i[held], y[held], positives)
            self.history.append({"epoch": epoch, "val_mse": val_mse, "val_mrr": val_mrr, "steps": steps})
            # rank first, calibration second: MSE only breaks ties between epochs of equal ranking
            if stopper.update(val_mrr - val_mse, self.net):
                break
        stopper.restore(self.net)
        return self.net.eval()

    def _caption_memory(self, data: TrainingData, codes: dict) -> CaptionMemory | None:
        """The own captions of the training images, embedded as this model embeds a text (after training)."""
        if self.neighbours == 0 or data.positives_text is None or data.positives_groups is None:
            return None
        assert data.positives_image is not None
        groups = np.array([codes.get(g, -1 - k) for k, g in enumerate(data.positives_groups)], dtype=np.int64)
        return CaptionMemory(
            image=unit(self._image_in(data.positives_image)),
            text=unit(self._text_vectors(data.positives_text)),
            groups=groups,
        )

    def _image_vectors(self, image_in, exclude: np.ndarray | None = None):
        """Gallery vectors of standardised image features (a tensor): the network's, plus the caption neighbours'
        (leaving out the memory's captions of the images in `exclude`), weighted."""
        import torch

        vectors = self.net.embed_image(image_in)
        if self.memory is None or self.neighbours == 0 or self.neighbour_weight == 0:
            return vectors
        captions = self.memory.lookup(
            unit(image_in.detach().numpy()), self.neighbours, self.neighbour_temperature, exclude
        )
        # over 1 + weight, so a score's cosine stays in [-1, 1] as without neighbours (its a and b fit as before)
        return (vectors + self.neighbour_weight * torch.from_numpy(captions)) / (1 + self.neighbour_weight)

    def _calibration_rows(self, data: TrainingData) -> np.ndarray:
        """The training rows a and b are refitted on (`calibrate_on`): the expert-rated ones, or all."""
        everything = np.arange(len(data.target))
        if self.calibrate_on != "experts" or data.expert is None:
            return everything
        expert = np.flatnonzero(data.expert)
        return expert if len(expert) >= MIN_EXPERT_PAIRS else everything

    def build_network(self):
        """A new network of this model's shape (`dims` set): weights at their initial values."""
        if self.members == 1:
            return self._member_network()
        return _ensemble([self._member_network() for _ in range(self.members)], self.text_tower == "identity")

    def _member_network(self):
        return _network(*self.dims, self.dim, self.hidden, self.dropout, self.text_tower, self.image_tower)

    def _positives(self, data: TrainingData, held: np.ndarray) -> _Positives | None:
        """Each image's own captions for the contrastive loss, with a held-out part for validation retrieval;
        None when there are too few images with captions to contrast."""
        import torch

        if data.positives_groups is None or len(np.unique(data.positives_groups)) <= 3:
            return None
        assert data.positives_text is not None and data.positives_image is not None
        groups = np.asarray(data.positives_groups)
        # positives whose image is in the rating hold-out stay out of training too
        held_images = set(data.groups[held].tolist())
        pos_held = np.array([g in held_images for g in groups])
        if pos_held.sum() < 2 or (~pos_held).sum() < 2:
            pos_held = np.zeros(len(groups), dtype=bool)
            pos_held[: max(2, len(groups) // 10)] = True
        # validation retrieval: each held-out caption against the held-out images
        val_images, own = np.unique(groups[pos_held], return_inverse=True)
        first_of = {g: k for k, g in enumerate(groups) if pos_held[k]}
        return _Positives(
            text=torch.from_numpy(self._text_in(data.positives_text)),
            image=torch.from_numpy(self._image_in(data.positives_image)),
            groups=groups,
            train_rows=np.flatnonzero(~pos_held),
            val_text_rows=torch.from_numpy(np.flatnonzero(pos_held)),
            val_image_rows=torch.from_numpy(np.array([first_of[g] for g in val_images])),
            val_own=own,
        )

    def _validate(self, t, i, y, positives: _Positives | None) -> tuple[float, float]:
        """(MSE on the held-out rated pairs, MRR of held-out captions against their images)."""
        import torch
        from torch import nn

        self.net.eval()
        with torch.no_grad():
            cosine = (self.net.embed_text(t) * self.net.embed_image(i)).sum(-1)
            val_mse = float(nn.functional.mse_loss(self.net.calibrate(cosine), y))
            if positives is None:
                return val_mse, 0.0
            texts = self.net.embed_text(positives.text[positives.val_text_rows]).numpy()
            images = self.net.embed_image(positives.image[positives.val_image_rows]).numpy()
        return val_mse, mean_reciprocal_rank(texts @ images.T, positives.val_own)

    def _recalibrate(self, t, i, y, groups: np.ndarray | None = None) -> None:
        """Refit only a and b on these rated pairs: the ranking stays, the scores become calibrated."""
        import torch

        with torch.no_grad():
            cosine = (self._queries(t) * self._pair_gallery(i, groups)).sum(-1)
        # the line search keeps LBFGS from overshooting: without it a locked text tower's fit ran off to a = 20,
        # b = 91, which saturates every score to 1.0 in float32 and so ties every image
        optimizer = torch.optim.LBFGS([self.net.a, self.net.b], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net.calibrate(cosine), y)
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            self.net.a.clamp_(min=1e-3)  # keep the map increasing, so ranking is unchanged

    def _pair_gallery(self, image_in, groups: np.ndarray | None):
        """`_gallery` for rated pairs, one row a pair: computed once an image and repeated, since an image is in many
        pairs (practicum-dev: 16,500 pairs of 440 images; its caption lookup took 6 s a fit on one thread). Rows of
        one group whose features differ are computed one by one, as without grouping."""
        import torch

        if groups is None:
            return self._gallery(image_in, groups)
        _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        index = torch.from_numpy(inverse.reshape(-1))
        if not torch.equal(image_in[torch.from_numpy(first)][index], image_in):
            return self._gallery(image_in, groups)
        return self._gallery(image_in[torch.from_numpy(first)], groups[first])[index]

    def _info_nce(self, positives: _Positives, rng: np.random.Generator):
        import torch
        from torch import nn

        # one caption per image in a batch, so no other row in it is a false negative
        batch, seen = [], set()
        for k in rng.permutation(positives.train_rows):
            if positives.groups[k] not in seen:
                seen.add(positives.groups[k])
                batch.append(k)
                if len(batch) == self.batch_size:
                    break
        idx = torch.from_numpy(np.array(batch))
        logits = (
            self.net.logit_scale.exp().clamp(max=100)
            * self.net.embed_text(positives.text[idx])
            @ self.net.embed_image(positives.image[idx]).T
        )
        labels = torch.arange(len(idx))
        return (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels)) / 2

    @property
    def out_dim(self) -> int:
        """The dimension of the shared space: the text encoder's own with a locked (identity) text tower; members
        side by side otherwise."""
        return (self.dims[0] if self.text_tower == "identity" else self.dim * self.members) + int(self._hub_on)

    @property
    def _hub_on(self) -> bool:
        return self.memory is not None and self.hub_penalty > 0

    def _queries(self, text_in):
        """Query vectors of normalised text features (a tensor). With the hubness term each ends in a 1, which
        meets the gallery vector's last entry (its offset): a score stays one inner product."""
        import torch

        vectors = self.net.embed_text(text_in)
        if not self._hub_on:
            return vectors
        return torch.cat([vectors, torch.ones(len(vectors), 1, dtype=vectors.dtype)], dim=1)

    def _gallery(self, image_in, exclude: np.ndarray | None = None):
        """Gallery vectors of standardised image features (a tensor): `_image_vectors`, and with the hubness term
        a last entry holding the image's offset, -hub_penalty x its hubness (leaving out the memory's captions of the
        images in `exclude`)."""
        import torch

        vectors = self._image_vectors(image_in, exclude)
        if not self._hub_on:
            return vectors
        assert self.memory is not None
        hub = self.memory.hubness(vectors.numpy(), self.hub_neighbours, exclude)
        offsets = torch.from_numpy((-self.hub_penalty * hub).astype(np.float32))
        return torch.cat([vectors, offsets[:, None]], dim=1)

    # -- scoring --------------------------------------------------------------------------------
    def _text_vectors(self, text: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net.embed_text(torch.from_numpy(self._text_in(text))).numpy()

    def embed_texts(self, text: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._queries(torch.from_numpy(self._text_in(text))).numpy()

    def embed_images(self, image: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._gallery(torch.from_numpy(self._image_in(image))).numpy()

    def calibrate(self, cosine: np.ndarray) -> np.ndarray:
        from scipy.special import expit  # the logistic function without overflow warnings for steep maps

        a, b = float(self.net.a.detach()), float(self.net.b.detach())
        return expit(a * np.asarray(cosine) + b).astype(np.float32)

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
            "text_tower",
            "image_tower",
            "calibrate_on",
            "members",
            "neighbours",
            "neighbour_weight",
            "neighbour_temperature",
            "hub_penalty",
            "hub_neighbours",
        )
        return {k: getattr(self, k) for k in keys}

    def save(self, directory: Path) -> None:
        import torch

        directory = Path(directory)
        torch.save(self.net.state_dict(), directory / "two_tower.pt")
        np.savez(directory / "image_scaler.npz", mean=self.image_scaler.mean, std=self.image_scaler.std)
        if self.memory is not None:
            self.memory.save(directory / "caption_memory.npz")
        dims = {"dt": self.dims[0], "di": self.dims[1]}
        (directory / "two_tower.json").write_text(json.dumps({**self._config(), **dims}, indent=2))
        write_kind(directory, self.kind)

    @classmethod
    def load(cls, directory: Path) -> TwoTowerModel:
        import torch

        directory = Path(directory)
        meta = json.loads((directory / "two_tower.json").read_text())
        dims = (meta.pop("dt"), meta.pop("di"))
        meta.setdefault("text_tower", "mlp")  # saved before the tower options: both towers were MLPs
        meta.setdefault("image_tower", "mlp")
        meta.setdefault("calibrate_on", "ratings")  # saved before the option: fitted to every rated pair
        meta.setdefault("members", 1)  # saved before the option (or its default of 3): one network
        meta.setdefault("neighbours", 0)  # saved before caption neighbours: the network's vectors alone
        meta.setdefault("hub_penalty", 0.0)  # saved before the hubness term: cosines as they were
        model = cls(**meta)
        model.dims = dims
        model.net = model.build_network()
        model.net.load_state_dict(torch.load(directory / "two_tower.pt", weights_only=True))
        model.net.eval()
        scaler = np.load(directory / "image_scaler.npz")
        model.image_scaler = Standardizer(scaler["mean"], scaler["std"])
        if (directory / "caption_memory.npz").exists():
            model.memory = CaptionMemory.load(directory / "caption_memory.npz")
        return model
