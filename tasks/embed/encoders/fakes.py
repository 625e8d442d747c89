"""Deterministic, fast fake encoders for unit tests: hashed tokens and colour histograms."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image


def _token_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeTextEncoder:
    """Sum of hash-seeded token vectors, L2-normalised: deterministic, and texts that share words are close."""

    def __init__(self, encoder_id: str = "fake-text", dim: int = 32):
        self.encoder_id = encoder_id
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = re.findall(r"\w+", text.lower()) or [text]
            vector = sum(_token_vector(t, self._dim) for t in tokens)
            out[i] = vector / (np.linalg.norm(vector) or 1.0)
        return out


class FakeImageEncoder:
    """Per-channel colour histograms of a 32-px thumbnail: deterministic, and it depends on the pixels."""

    image_size = 32

    def __init__(self, encoder_id: str = "fake-image", bins: int = 16):
        self.encoder_id = encoder_id
        self.bins = bins

    @property
    def dim(self) -> int:
        return 3 * self.bins

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        return transforms.Compose([transforms.Resize((self.image_size, self.image_size)), transforms.PILToTensor()])

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for i, pixels in enumerate(items):
            array = np.asarray(pixels).astype(np.int64) // (256 // self.bins)  # uint8 (3, H, W) -> bin index
            hists = [np.bincount(array[c].ravel(), minlength=self.bins) for c in range(3)]
            out[i] = np.concatenate(hists) / array[0].size
        return out

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])
