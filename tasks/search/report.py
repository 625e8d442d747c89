"""A self-contained HTML page of search results (thumbnails inlined, so the file can be mailed or archived)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from tasks.html import render
from tasks.search.searcher import SearchResult


def thumbnail_data_uri(path: Path, size: int = 240) -> str:
    with Image.open(path) as raw:
        img = raw.convert("RGB")
        img.thumbnail((size, size))
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def search_page(result: SearchResult) -> str:
    hits = [
        {"image": hit.image, "score": hit.score, "uri": thumbnail_data_uri(Path(hit.path))} for hit in result.results
    ]
    return render("tasks.search", "results.html.j2", result=result, hits=hits)
