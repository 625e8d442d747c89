"""The real encoders: sentence-transformers and torch CNNs, loaded lazily on first use."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tasks.embed.encoders.base import IMAGENET_MEAN, IMAGENET_STD, as_float32_rows, configure_torch_threads
from tasks.embed.encoders.locate import locate_lite_weights, locate_resnet18_weights


class _Lazy:
    """Loads the model once, on first use, under a lock (Prefect may call from several threads)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    configure_torch_threads()
                    self._model = self._load()
        return self._model


@contextlib.contextmanager
def _no_weight_loading_bar() -> Iterator[None]:
    """transformers draws a "Loading weights: 0/103" bar for a load of a tenth of a second, on every `imgsearch
    search`; it says nothing, so it is off while a model loads and as it was afterwards."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class SentenceTransformerTextEncoder(_Lazy):
    """Any sentence-transformers model in a local folder; `locate` is only called when the model is first needed."""

    def __init__(self, encoder_id: str, locate: Callable[[], Path], batch_size: int = 64, dim: int | None = None):
        super().__init__()
        self.encoder_id = encoder_id
        self._locate = locate
        self.batch_size = batch_size
        # A known dimension lets a fully cached run check its output without loading the model.
        self._declared_dim = dim

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        with _no_weight_loading_bar():
            return SentenceTransformer(str(self._locate()), device="cpu", local_files_only=True)

    @property
    def dim(self) -> int:
        if self._declared_dim is not None:
            return self._declared_dim
        model = self.model
        # sentence-transformers 5 renamed the method; keep working with both.
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return as_float32_rows(out, len(texts), self.dim, self.encoder_id)


class SentenceTransformerImageEncoder(SentenceTransformerTextEncoder):
    """The image side of a CLIP-style sentence-transformers model: takes PIL images, does its own preprocessing."""

    image_size = 224

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        # Only shrink here (cheap, parallel); the model's own processor does the exact crop and normalisation.
        return transforms.Resize(self.image_size)

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        out = self.model.encode(list(items), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return as_float32_rows(out, len(items), self.dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])


class TorchCNNImageEncoder(_Lazy):
    """A CNN without its classifier: the globally pooled features of the last convolution, one vector per image."""

    def __init__(
        self,
        encoder_id: str,
        dim: int,
        image_size: int,
        build: Callable[[], Any],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        resize: int | None = None,
    ):
        super().__init__()
        self.encoder_id = encoder_id
        self._dim = dim
        self.image_size = image_size
        self._build = build
        self._mean, self._std = tuple(mean), tuple(std)
        self._resize = resize or image_size

    def _load(self) -> Any:
        return self._build().eval()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        return transforms.Compose(
            [
                transforms.Resize(self._resize),
                transforms.CenterCrop(self.image_size),
                transforms.ToTensor(),
                transforms.Normalize(self._mean, self._std),
            ]
        )

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        with torch.inference_mode():
            features = self.model(torch.stack(list(items)))
        return as_float32_rows(features.numpy(), len(items), self._dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])


class _Features:
    """Wraps a network so that calling it returns pooled features (the Lite model has a `features` method)."""

    def __init__(self, network: Any):
        self.network = network

    def eval(self) -> _Features:
        self.network.eval()
        return self

    def __call__(self, x: Any) -> Any:
        return self.network.features(x)


def _build_lite(encoder_id: str) -> Any:
    from tasks.embed.encoders.efficientnet_lite import inference_network

    return _Features(inference_network(encoder_id, locate_lite_weights(encoder_id)))


def _build_resnet18(weights: Path | None = None) -> Any:
    import torch
    from torchvision.models import resnet18

    network = resnet18(weights=None)
    state = torch.load(weights or locate_resnet18_weights(), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    network.fc = torch.nn.Identity()  # the 512-d pooled features, not the ImageNet logits
    # channels-last weights, as for the Lite networks (`inference_network`): 40 images at 224 px on two threads
    # take 0.83 s instead of 1.1 s here, same features up to float rounding
    return network.to(memory_format=torch.channels_last)


def lite_encoder(encoder_id: str) -> TorchCNNImageEncoder:
    from tasks.embed.encoders.efficientnet_lite import HEAD_FILTERS, INPUT_MEAN, INPUT_STD, VARIANTS

    size = VARIANTS[encoder_id].image_size
    return TorchCNNImageEncoder(
        encoder_id, HEAD_FILTERS, size, functools.partial(_build_lite, encoder_id), INPUT_MEAN, INPUT_STD
    )


VIEWS_SUFFIX = "-views"


class _LiteMultiViewEncoder(_Lazy):
    """An EfficientNet-Lite network run on several views of each image; its own id, so the cache keeps it apart."""

    def __init__(self, base_id: str, suffix: str):
        super().__init__()
        from tasks.embed.encoders.efficientnet_lite import VARIANTS

        self.base_id = base_id
        self.encoder_id = base_id + suffix
        self.image_size = VARIANTS[base_id].image_size

    def _load(self) -> Any:
        return _build_lite(self.base_id).eval()

    @property
    def dim(self) -> int:
        from tasks.embed.encoders.efficientnet_lite import HEAD_FILTERS

        return HEAD_FILTERS


class LiteViewsImageEncoder(_LiteMultiViewEncoder):
    """EfficientNet-Lite features averaged over three views: the centre crop, its mirror image and the whole frame.

    One centre crop loses whatever lies at the sides of a wide photo, which is often what a caption names; the whole
    frame (aspect kept, shorter side at the network's size) keeps it, and the mirror evens out left-right detail.
    Averaging keeps the 1280-d vector, so every model and index works unchanged, at three network passes per image.
    Its own encoder id, so the content-hash cache never mixes it with the one-crop vectors.
    """

    def __init__(self, base_id: str):
        super().__init__(base_id, VIEWS_SUFFIX)

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        return functools.partial(_crop_and_whole, size=self.image_size)

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            crops = torch.stack([crop for crop, _ in items])
            summed = self.model(crops) + self.model(torch.flip(crops, dims=[3]))
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for k, (_, whole) in enumerate(items):  # whole frames keep their aspect: same shapes share a call
                by_shape.setdefault(tuple(whole.shape), []).append(k)
            for rows in by_shape.values():
                summed[rows] += self.model(torch.stack([items[k][1] for k in rows]))
        return as_float32_rows((summed / 3).numpy(), len(items), self.dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.encode_preprocessed([_crop_and_whole(img.convert("RGB"), self.image_size) for img in images])


def _crop_and_whole(image: Image.Image, size: int) -> tuple[Any, Any]:
    """The centre crop at `size` and the whole frame resized to shorter side `size` (longer side a multiple of 32)."""
    from torchvision.transforms import functional as TF

    from tasks.embed.encoders.efficientnet_lite import INPUT_MEAN, INPUT_STD

    crop = TF.center_crop(TF.resize(image, size), size)
    width, height = image.size
    longer = max(32, round(max(width, height) * size / min(width, height) / 32) * 32)
    whole = image.resize((size, longer) if width <= height else (longer, size), Image.Resampling.BILINEAR)
    return (
        TF.normalize(TF.to_tensor(crop), INPUT_MEAN, INPUT_STD),
        TF.normalize(TF.to_tensor(whole), INPUT_MEAN, INPUT_STD),
    )


# Views of one image for the tiled encoder: the whole frame, then its four quadrants, as (left, top, right, bottom)
# fractions. A child at the edge of a photo is small in the whole frame and lost to a centre crop; in a quadrant
# it is twice as large.
TILE_BOXES = (
    (0.0, 0.0, 1.0, 1.0),
    (0.0, 0.0, 0.5, 0.5),
    (0.5, 0.0, 1.0, 0.5),
    (0.0, 0.5, 0.5, 1.0),
    (0.5, 0.5, 1.0, 1.0),
)
TILED_SUFFIX = "-tiles"
# The same five views, not pooled: one 5 x 1280 row per image (views in TILE_BOXES order), for a detector that
# scores each view on its own and keeps the highest score (`tasks/safety/image_detector.py`, `ViewMaxClassifier`).
TILE_VIEWS_SUFFIX = "-tileviews"


class TiledLiteImageEncoder(_LiteMultiViewEncoder):
    """EfficientNet-Lite features of the whole frame and its four quadrants, max-pooled over the five views.

    Each view is resized (not cropped; aspect ratio kept) to the network's input scale. Max over views keeps a
    feature that fires in any one quadrant, which is what "is there a child anywhere" needs; on practicum-dev it
    lifts the detector's out-of-fold AUC from 0.878 (one centre crop) to 0.891 and the adult images kept at
    recall 0.95 from 53% to 59% (README, "Child safety").
    """

    def __init__(self, base_id: str, views_per_call: int = 40, pooled: bool = True):
        super().__init__(base_id, TILED_SUFFIX if pooled else TILE_VIEWS_SUFFIX)
        self.views_per_call = views_per_call
        self.pooled = pooled

    @property
    def dim(self) -> int:
        from tasks.embed.encoders.efficientnet_lite import HEAD_FILTERS

        return HEAD_FILTERS if self.pooled else HEAD_FILTERS * len(TILE_BOXES)

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        return functools.partial(_tile_views, size=self.image_size)

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        views = [view for item in items for view in item]  # len(TILE_BOXES) views per image, in order
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for k, view in enumerate(views):
            by_shape.setdefault(tuple(view.shape), []).append(k)
        width = self.dim if self.pooled else self.dim // len(TILE_BOXES)
        features = torch.zeros(len(views), width)
        with torch.inference_mode():
            for rows in by_shape.values():  # views keep their aspect ratio, so only same-shaped ones share a call
                for i in range(0, len(rows), self.views_per_call):
                    chunk = rows[i : i + self.views_per_call]
                    features[chunk] = self.model(torch.stack([views[k] for k in chunk]))
        by_view = features.reshape(len(items), len(TILE_BOXES), -1)
        out = by_view.amax(dim=1) if self.pooled else by_view.reshape(len(items), -1)
        return as_float32_rows(out.numpy(), len(items), self.dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.encode_preprocessed([_tile_views(img.convert("RGB"), self.image_size) for img in images])


def _tile_views(
    image: Image.Image, size: int, boxes: Sequence[tuple[float, float, float, float]] = TILE_BOXES
) -> list[Any]:
    """The views of `boxes` (TILE_BOXES unless a bench tries others), each resized (aspect kept, shorter side `size`,
    longer side a multiple of 32)."""
    from torchvision.transforms import functional as TF

    from tasks.embed.encoders.efficientnet_lite import INPUT_MEAN, INPUT_STD

    width, height = image.size
    views = []
    for left, top, right, bottom in boxes:
        view = image.crop((round(left * width), round(top * height), round(right * width), round(bottom * height)))
        w, h = view.size
        longer = max(32, round(max(w, h) * size / min(w, h) / 32) * 32)
        view = view.resize((size, longer) if w <= h else (longer, size), Image.Resampling.BILINEAR)
        views.append(TF.normalize(TF.to_tensor(view), INPUT_MEAN, INPUT_STD))
    return views


class TunedTileViewsEncoder(TiledLiteImageEncoder):
    """The tile views of a Lite network whose head (and any last blocks) were fine-tuned to detect children.

    Its id, `efficientnet-lite0-tileviews-tuned-<hash>`, names the weights file the training run wrote (a content
    hash, so the embedding cache never mixes two detectors' features); `tasks/safety/tuned_detector.py` says how it
    is trained and where the file is found."""

    def __init__(self, encoder_id: str):
        from tasks.safety.tuned_detector import base_of, weights_path

        super().__init__(base_of(encoder_id), pooled=False)
        self.encoder_id = encoder_id
        weights_path(encoder_id)  # a missing weights file fails here, not in the middle of a run

    def _load(self) -> Any:
        from tasks.safety.tuned_detector import tuned_network

        return _Features(tuned_network(self.encoder_id))
