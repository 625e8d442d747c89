"""The multi-view Lite encoder: its own id beside the one-crop encoders, three views averaged into the same 1280-d."""

import numpy as np
from PIL import Image

from tasks.embed.encoders.registry import get_image_encoder


def test_views_encoder_is_registered_and_averages_crop_mirror_and_whole_frame():
    get_image_encoder.cache_clear()
    views = get_image_encoder("efficientnet-lite0-views")
    plain = get_image_encoder("efficientnet-lite0")
    assert views.encoder_id == "efficientnet-lite0-views" and views.dim == plain.dim == 1280
    rng = np.random.default_rng(0)
    wide = Image.fromarray(rng.integers(0, 255, size=(120, 300, 3), dtype=np.uint8))
    tall = Image.fromarray(rng.integers(0, 255, size=(260, 150, 3), dtype=np.uint8))
    out = views.encode_images([wide, tall, wide])
    assert out.shape == (3, 1280) and np.isfinite(out).all()
    assert np.allclose(out[0], out[2], atol=1e-5)  # batches of mixed shapes keep rows in order
    one = plain.encode_images([wide])[0]
    cosine = float(out[0] @ one / (np.linalg.norm(out[0]) * np.linalg.norm(one)))
    assert 0.8 < cosine < 0.9999  # the same picture, seen more completely
    get_image_encoder.cache_clear()
