"""The fine-tuned child detector: EfficientNet-Lite0's head convolution trained on the labelled images.

The linear detector reads frozen ImageNet features, which say "a person doing something" rather than "a child":
the adult photos it hides at recall 0.95 are footballers, dancers and climbers. Training the end of the network
on the labelled images moves those features. On practicum-dev, out of fold, judged on caption labels
(`bench/child_detector_finetune.py`, four fold seeds) training the 1x1 head convolution keeps 0.657 of adult
images at recall 0.95 where the linear detector on the same views keeps 0.629 (AUC 0.919 against 0.910).
Training Lite0's last MBConv block as well (`trained_from=15`: 0.666, AUC 0.917) is no better within the noise
and takes two and a half times as long a fit.

How it is built, so that it costs one network pass per image, as the linear detector does:
- Each image is seen as the five tile views of `efficientnet-lite0-tileviews` (the whole frame and its quadrants).
- The trunk (stem and blocks before `trained_from`) stays frozen. Its activations for the labelled images are
  computed once (`trunk_maps`), and every fit reads them.
- A fit (`fit_tail`) trains the blocks from `trained_from` on (none by default), the head convolution and a linear
  layer on the views max-pooled: AdamW, a one-cycle schedule, class-balanced binary cross-entropy, maps mirrored
  at random; in bfloat16 arithmetic where the CPU has it (measured with the last block trained: half the time,
  the same detector, AUC 0.919 and 0.683 of adults kept at recall 0.95 in float32 and in bfloat16).
- The trained blocks and head are saved in a weights file named by its content hash. The encoder id
  `efficientnet-lite0-tileviews-tuned-<hash>` reads it: the network with those weights, giving the same 5 x 1280
  per-view features as `-tileviews`. So the embedding cache never mixes tuned and frozen features, and every
  serving path (search, score, upload, index) computes the detector's features as for any other encoder.
- The classifier over those features is `TunedLinear`: the maximum over the views, standardised, then the trained
  linear layer and a sigmoid (exactly the training forward pass).
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BASE_ENCODER = "efficientnet-lite0"
# Part of every fit's cache key: raise it when a change to the training code should retrain every detector.
FIT_VERSION = 2
TUNED_DIR_NAME = "tuned"  # beside the detector file: `Workspace.tuned_detector_dir`
TUNED_MARK = "-tileviews-tuned-"
_TUNED_ID = re.compile(r"^(?P<base>efficientnet-lite[0-4])-tileviews-tuned-(?P<digest>[0-9a-f]{16})$")

# Weights files of tuned encoders, by encoder id, registered by the process that trained or loaded them; and the
# folders searched for `<encoder id>.pt` when an id is not registered (a workspace's `safety/tuned`).
_REGISTERED: dict[str, Path] = {}
_SEARCH_DIRS: list[Path] = []

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneParams:
    """What one fit trains and how (the measured defaults of `bench/child_detector_finetune.py`)."""

    # First trained block. 16 (past Lite0's last, 15) trains the 1x1 head convolution (320 -> 1280 channels on
    # 7x7 maps) and the linear layer only: fits 40 % as long as with block 15 trained too, and a detector as
    # good within the fold-to-fold noise (README, "Fine-tuning the head convolution alone").
    trained_from: int = 16
    epochs: int = 4
    lr_body: float = 1e-3  # the trained convolutions'; 1e-4 and 3e-4 were no better with the head alone
    lr_head: float = 1e-3
    weight_decay: float = 1e-2
    batch: int = 16
    # Train (not score) with bfloat16 arithmetic where the CPU has it natively (`bf16_native`): 1.7 times as fast
    # here. The weights, the trunk maps and every score stay float32, so serving paths are unchanged.
    bf16: bool = True


def is_tuned(encoder_id: str) -> bool:
    return _TUNED_ID.match(encoder_id) is not None


def register_weights(encoder_id: str, path: Path) -> None:
    """Make `encoder_id` resolvable in this process (the registry reads the weights from `path`)."""
    _REGISTERED[encoder_id] = Path(path)


def add_search_dir(folder: Path) -> None:
    """A folder holding `<encoder id>.pt` weights files (a workspace's tuned-detector folder)."""
    if Path(folder) not in _SEARCH_DIRS:
        _SEARCH_DIRS.append(Path(folder))


def weights_path(encoder_id: str) -> Path:
    """The weights file of a tuned encoder id, or a FileNotFoundError that says where it was looked for."""
    if encoder_id in _REGISTERED:
        return _REGISTERED[encoder_id]
    dirs = list(_SEARCH_DIRS)
    from tasks.workspace import workspace_root

    dirs.append(workspace_root() / "safety" / TUNED_DIR_NAME)  # the default workspace ($IMGSEARCH_HOME), not made
    for folder in dirs:
        if (folder / f"{encoder_id}.pt").is_file():
            return folder / f"{encoder_id}.pt"
    raise FileNotFoundError(
        f"weights of the fine-tuned detector encoder {encoder_id!r} not found in "
        f"{', '.join(str(d) for d in dirs) or 'any registered folder'}; the training run that made it writes "
        "them to its workspace's safety/tuned/ (set IMGSEARCH_HOME to that workspace)"
    )


def base_of(encoder_id: str) -> str:
    match = _TUNED_ID.match(encoder_id)
    if match is None:
        raise ValueError(f"{encoder_id!r} is not a fine-tuned detector encoder id")
    return match["base"]


def frozen_network(base_id: str = BASE_ENCODER) -> Any:
    """The ImageNet network with batch norm folded into its convolutions, channels-last (what every Lite encoder
    runs)."""
    from tasks.embed.encoders.efficientnet_lite import inference_network
    from tasks.embed.encoders.locate import locate_lite_weights

    return inference_network(base_id, locate_lite_weights(base_id))


def tuned_network(encoder_id: str) -> Any:
    """The network of a tuned encoder id: the frozen trunk, the trained blocks and head from its weights file."""
    import torch

    state = torch.load(weights_path(encoder_id), map_location="cpu", weights_only=True)
    net = frozen_network(base_of(encoder_id))
    trained_from = int(state.pop("trained_from").item())
    missing = [k for k in state if not k.startswith(("_blocks.", "_conv_head."))]
    if missing:
        raise ValueError(f"{weights_path(encoder_id)}: unexpected weights {missing[:3]}")
    blocks = {k.removeprefix("_blocks."): v for k, v in state.items() if k.startswith("_blocks.")}
    for i in range(trained_from, len(net._blocks)):
        prefix = f"{i}."
        net._blocks[i].load_state_dict({k.removeprefix(prefix): v for k, v in blocks.items() if k.startswith(prefix)})
    net._conv_head.load_state_dict({k.removeprefix("_conv_head."): v for k, v in state.items() if "_conv_head" in k})
    return net.eval()


def trunk_maps(
    paths: Sequence[Path],
    trained_from: int,
    base_id: str = BASE_ENCODER,
    progress: Callable[[int], None] | None = None,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
) -> list[list[np.ndarray]]:
    """Each image's tile views (`TILE_BOXES`, or `boxes` for a bench) through the frozen stem and blocks
    [0, trained_from): float16 maps."""
    import torch
    from PIL import Image
    from torch.nn import functional as F

    from tasks.embed.encoders.efficientnet_lite import VARIANTS
    from tasks.embed.encoders.models import TILE_BOXES, _tile_views

    net, size = frozen_network(base_id), VARIANTS[base_id].image_size
    out = []
    with torch.inference_mode():
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                views = _tile_views(image.convert("RGB"), size, TILE_BOXES if boxes is None else boxes)
            maps = []
            for view in views:
                x = F.relu6(net._bn0(net._conv_stem(view[None])))
                for block in net._blocks[:trained_from]:
                    x = block(x)
                maps.append(x[0].half().contiguous().numpy())  # NCHW, whatever layout the network ran in
            out.append(maps)
            if progress is not None:
                progress(i + 1)
    return out


TRUNK_CHUNK = 50  # images a worker maps per call: progress every few seconds, little pickling


def trunk_maps_side_by_side(
    paths: Sequence[Path], trained_from: int, workers: int, progress: Callable[[int], None] | None = None
) -> list[list[np.ndarray]]:
    """`trunk_maps` in chunks over `workers` single-thread processes (the same maps, in order)."""
    from tasks.parallel import side_by_side

    chunks = [list(paths[s : s + TRUNK_CHUNK]) for s in range(0, len(paths), TRUNK_CHUNK)]
    out: list[list[np.ndarray]] = []
    for maps in side_by_side(((trunk_maps, (chunk, trained_from)) for chunk in chunks), workers):
        out += maps
        if progress is not None:
            progress(len(out))
    return out


@dataclass(frozen=True)
class PackedMaps:
    """Trunk maps (`trunk_maps`: per image, its views' float16 maps, of varied shapes) as one flat array.

    A fit in a worker process receives this instead of the lists: joblib hands a large array to its workers as one
    memory-mapped file, written once for every fit, where about 5,000 small arrays (215 MB on practicum-dev) were
    pickled into each fit and left the worker's heap fragmented. Indexing gives an image's views as before."""

    flat: np.ndarray  # every view's map, raveled, end to end
    offsets: np.ndarray  # where each view starts in `flat` (one more entry than views: the end)
    shapes: np.ndarray  # (views, 3): each view's (channels, height, width)
    per_image: int  # views an image

    @classmethod
    def pack(cls, maps: Sequence[Sequence[np.ndarray]]) -> PackedMaps:
        views = [m for per_image in maps for m in per_image]
        per_image = len(maps[0]) if len(maps) else 0
        if any(len(v) != per_image for v in maps):
            raise ValueError("every image needs the same number of views")
        sizes = np.array([m.size for m in views], dtype=np.int64)
        return cls(
            np.concatenate([np.ravel(m) for m in views]) if views else np.zeros(0, dtype=np.float16),
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            np.array([m.shape for m in views], dtype=np.int64).reshape(len(views), 3),
            per_image,
        )

    def __len__(self) -> int:
        return len(self.shapes) // self.per_image if self.per_image else 0

    def __getitem__(self, i: int) -> list[np.ndarray]:
        first = int(i) * self.per_image
        return [self._view(k) for k in range(first, first + self.per_image)]

    def _view(self, k: int) -> np.ndarray:
        return self.flat[self.offsets[k] : self.offsets[k + 1]].reshape(tuple(self.shapes[k]))


@dataclass(frozen=True)
class TunedFits:
    """Every fit of one detector: each labelled image's out-of-fold score, and the tail fitted on them all."""

    oof: np.ndarray
    final: Any


def _fit_and_score(
    maps: Sequence[Sequence[np.ndarray]] | PackedMaps,
    labels: np.ndarray,
    train: np.ndarray,
    scored: np.ndarray | None,
    params: FinetuneParams,
    seed: int,
) -> tuple[float, Any]:
    """One fit on the `train` rows: (seconds, the held-out rows' scores), or with `scored` None (seconds, the
    tail's state dict): plain values, so the fit can run in a worker process."""
    started = time.perf_counter()
    tail = fit_tail([maps[i] for i in train], labels[train], params, seed)
    if scored is None:
        return time.perf_counter() - started, {k: v.detach().clone() for k, v in tail.state_dict().items()}
    return time.perf_counter() - started, tail_scores(tail, [maps[i] for i in scored])


def fit_folds_and_final(
    maps: Sequence[Sequence[np.ndarray]] | PackedMaps,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    params: FinetuneParams,
    seed: int,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> TunedFits:
    """One fit per fold (scoring its held-out images) and the final fit on every image, side by side over
    `workers` single-thread processes. Fold k trains from seed `seed * 100 + k`, the final fit from
    `seed * 100 + len(folds)`. The final fit, the largest, goes first."""
    from tasks.parallel import side_by_side

    labels = np.asarray(labels).astype(int)
    everything = np.arange(len(labels))
    packed = maps if isinstance(maps, PackedMaps) or workers <= 1 else PackedMaps.pack(maps)
    jobs: list[tuple[Callable[..., Any], tuple]] = [
        (_fit_and_score, (packed, labels, everything, None, params, seed * 100 + len(folds)))
    ]
    jobs += [
        (_fit_and_score, (packed, labels, train, held, params, seed * 100 + k)) for k, (train, held) in enumerate(folds)
    ]
    oof, final = np.zeros(len(labels)), None
    for k, (seconds, result) in enumerate(side_by_side(jobs, workers)):
        if k == 0:
            final = result
            what = "final fit on every labelled image"
        else:
            oof[folds[k - 1][1]] = result
            what = f"fold {k}/{len(folds)}"
        if log is not None:
            log(f"{what}: {seconds:.0f} s")
    if final is None:
        raise RuntimeError("the final fine-tune fit returned nothing")
    tail = _tail_module(frozen_network(), params.trained_from, final["mean"], final["std"])
    tail.load_state_dict(final)
    return TunedFits(oof, tail.eval())


def _tail_module(net: Any, trained_from: int, mean: Any, std: Any) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from tasks.embed.encoders.efficientnet_lite import HEAD_FILTERS

    class Tail(nn.Module):
        """Blocks trained_from.., the head convolution and a linear layer; one logit per image (views max-pooled)."""

        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*copy.deepcopy(list(net._blocks[trained_from:])))
            self.head = copy.deepcopy(net._conv_head)
            for p in self.parameters():
                p.requires_grad_(True)
            self.fc = nn.Linear(HEAD_FILTERS, 1)
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def views(self, images: list[list[torch.Tensor]]) -> torch.Tensor:
            """(images, views, 1280): each view's averaged head map (maps of one shape share a call)."""
            by_shape: dict[tuple, list[tuple[int, int]]] = {}
            for i, views in enumerate(images):
                for j, v in enumerate(views):
                    by_shape.setdefault(tuple(v.shape), []).append((i, j))
            out = torch.zeros(len(images), max(len(v) for v in images), HEAD_FILTERS)
            for where in by_shape.values():
                x = self.blocks(torch.stack([images[i][j] for i, j in where]))
                feats = F.relu6(self.head(x)).mean(dim=(2, 3))
                rows, cols = torch.tensor([i for i, _ in where]), torch.tensor([j for _, j in where])
                out = out.index_put((rows, cols), feats.float())
            return out

        def forward(self, images: list[list[torch.Tensor]]) -> torch.Tensor:
            pooled = self.views(images).amax(dim=1)
            return self.fc((pooled - self.mean) / self.std).squeeze(-1)

    return Tail()


def bf16_native() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere it would be emulated, slower."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _as_tensors(maps: Sequence[Sequence[np.ndarray]]) -> list[list[Any]]:
    """Each image's views as float32 tensors: views into one buffer, allocated once (thousands of small
    allocations, one a view, would fragment the heap of a long-lived worker process)."""
    import torch

    buffer = np.empty(sum(m.size for views in maps for m in views), dtype=np.float32)
    out, start = [], 0
    for views in maps:
        tensors = []
        for m in views:
            end = start + m.size
            chunk = buffer[start:end].reshape(m.shape)
            chunk[...] = m
            tensors.append(torch.from_numpy(chunk))
            start = end
        out.append(tensors)
    return out


def fit_tail(
    maps: Sequence[Sequence[np.ndarray]],
    labels: np.ndarray,
    params: FinetuneParams,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Train the tail on `maps` (trunk activations, `trunk_maps`) and `labels` (1 = shows a child)."""
    import torch
    from torch.nn import functional as F

    labels = np.asarray(labels).astype(int)
    if len(set(labels.tolist())) < 2:
        raise ValueError("fine-tuning the child detector needs both child and other labelled images")
    torch.manual_seed(seed)
    images = _as_tensors(maps)
    net = frozen_network()
    with torch.no_grad():
        frozen = _tail_module(net, params.trained_from, torch.zeros(1), torch.ones(1)).eval()
        pooled = torch.cat([frozen.views(images[s : s + 32]).amax(dim=1) for s in range(0, len(images), 32)])
    model = _tail_module(net, params.trained_from, pooled.mean(0), pooled.std(0) + 1e-3)
    body = [p for n, p in model.named_parameters() if not n.startswith("fc")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": params.lr_body}, {"params": model.fc.parameters(), "lr": params.lr_head}],
        weight_decay=params.weight_decay,
    )
    steps_per_epoch = (len(images) + params.batch - 1) // params.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[params.lr_body, params.lr_head], total_steps=params.epochs * steps_per_epoch, pct_start=0.15
    )
    pos_weight = torch.tensor((labels == 0).sum() / max(1, (labels == 1).sum()), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=params.bf16 and bf16_native())
    started = time.perf_counter()
    for epoch in range(params.epochs):
        model.train()
        order, total = rng.permutation(len(images)), 0.0
        for s in range(0, len(order), params.batch):
            ids = order[s : s + params.batch]
            batch = [[torch.flip(v, dims=[2]) for v in images[i]] if rng.random() < 0.5 else images[i] for i in ids]
            target = torch.tensor(labels[ids], dtype=torch.float32)
            with autocast:
                loss = F.binary_cross_entropy_with_logits(model(batch), target, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(ids)
        if log is not None:
            seconds = time.perf_counter() - started
            log(f"epoch {epoch + 1}/{params.epochs}: loss {total / len(images):.4f}, {seconds:.0f} s")
    return model.eval()


def tail_scores(tail: Any, maps: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """P(child) of each image from the tail's forward pass on its trunk maps."""
    import torch

    images = _as_tensors(maps)
    with torch.no_grad():
        return torch.cat([torch.sigmoid(tail(images[s : s + 32])) for s in range(0, len(images), 32)]).numpy()


def tail_features(tail: Any, maps: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The tuned encoder's rows for images whose trunk maps are at hand: views side by side, float32."""
    import torch

    images = _as_tensors(maps)
    with torch.no_grad():
        rows = [tail.views(images[s : s + 32]) for s in range(0, len(images), 32)]
    out = torch.cat(rows) if rows else torch.zeros(0, 5, 1280)
    return out.reshape(len(images), -1).numpy().astype(np.float32)


class TunedLinear:
    """The classifier over a tuned encoder's rows: views max-pooled, standardised, the trained linear layer, sigmoid.

    Plain NumPy (no torch at scoring time), and `predict_proba` like scikit-learn's, so `ChildImageDetector`
    treats it as any other model."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: float, views: int):
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        self.weight, self.bias, self.views = np.asarray(weight, dtype=np.float64).ravel(), float(bias), int(views)

    @classmethod
    def from_tail(cls, tail: Any, views: int) -> TunedLinear:
        return cls(
            tail.mean.detach().numpy(),
            tail.std.detach().numpy(),
            tail.fc.weight.detach().numpy(),
            float(tail.fc.bias.detach().item()),
            views,
        )

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.views * len(self.weight):
            raise ValueError(
                f"expected rows of {self.views} views x {len(self.weight)} features, got shape {features.shape}"
            )
        pooled = features.reshape(len(features), self.views, -1).max(axis=1)
        logit = ((pooled - self.mean) / self.std) @ self.weight + self.bias
        p = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - p, p])


def save_tail(tail: Any, params: FinetuneParams, folder: Path, base_id: str = BASE_ENCODER) -> str:
    """Write the trained blocks and head under `folder`, named by their content hash; returns the encoder id
    (registered in this process) that reads them."""
    import torch

    from tasks.workspace import atomic_path

    state: dict[str, Any] = {}
    for k, v in tail.blocks.state_dict().items():
        index, rest = k.split(".", 1)
        state[f"_blocks.{params.trained_from + int(index)}.{rest}"] = v.detach().contiguous().clone()
    state |= {f"_conv_head.{k}": v.detach().contiguous().clone() for k, v in tail.head.state_dict().items()}
    state["trained_from"] = torch.tensor(params.trained_from)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    # the hash of the tensors' bytes (torch.save's archive also holds names that vary between saves)
    digest = hashlib.sha256()
    for k in sorted(state):
        digest.update(k.encode())
        digest.update(state[k].numpy().tobytes())
    encoder_id = f"{base_id}{TUNED_MARK}{digest.hexdigest()[:16]}"
    path = Path(folder) / f"{encoder_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    register_weights(encoder_id, path)
    return encoder_id
