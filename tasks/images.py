"""Opening image files within a pixel bound: the size is read from the header before anything is decoded.

A 100-megapixel PNG is a few hundred kilobytes on disk and about 300 MB once decoded (validation peaked
at 720 MB on one), so every stage that decodes input images opens them through `open_image`.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

# Largest image accepted, in pixels (width x height). Flickr8k photos are under 0.25 MP and a 48 MP phone
# photo still fits; decoding 50 MP as RGB takes about 150 MB.
MAX_IMAGE_PIXELS = 50_000_000


class ImageTooLargeError(ValueError):
    """An image whose header declares more pixels than MAX_IMAGE_PIXELS; it was not decoded."""

    def __init__(self, path: Path, pixels: int, size: str = ""):
        self.path, self.pixels = Path(path), pixels
        super().__init__(
            f"{self.path.name}: {size + ' = ' if size else ''}{pixels / 1e6:.1f} megapixels, "
            f"over the {MAX_IMAGE_PIXELS / 1e6:.0f} MP bound (not decoded)"
        )


def bound_pil() -> None:
    """Set PIL's own decompression-bomb limit to our bound, for any code in this process that opens images.

    PIL warns above `Image.MAX_IMAGE_PIXELS` and raises `DecompressionBombError` above twice that; its
    default (89 MP, error at 179 MP) would let the 100 MP PNG through. With ours, PIL itself refuses
    anything over 100 MP wherever it is opened; `open_image` refuses 50 to 100 MP with its own error, so
    PIL's warning for those is silenced rather than printed beside it. Set on first use, not at import.
    """
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # idempotent: replaces its twin


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """`Image.open` (lazy: only the header is read) that refuses an image over the pixel bound before decoding."""
    bound_pil()
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as err:  # over twice the bound: PIL refuses it from the header already
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise ImageTooLargeError(path, int(found.group(1)) if found else 2 * MAX_IMAGE_PIXELS + 1) from None
    with img:
        width, height = img.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(path, width * height, f"{width}x{height}")
        yield img
