"""A self-contained HTML page of search results (thumbnails inlined, so the file can be mailed or archived)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from tasks.search import SearchResult


def thumbnail_data_uri(path: Path, size: int = 240) -> str:
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def search_page(result: SearchResult) -> str:
    if result.refused:
        body = f'<p class="notice">{html.escape(result.notice or "")}</p>'
    elif not result.results:
        body = "<p>No images.</p>"
    else:
        body = '<div class="grid">' + "".join(
            f'<figure><img src="{thumbnail_data_uri(Path(hit.path))}" alt="{html.escape(hit.image)}">'
            f"<figcaption>{html.escape(hit.image)} — score {hit.score:.3f}</figcaption></figure>"
            for hit in result.results
        ) + "</div>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>imgsearch: {html.escape(result.query)}</title>
<style>body{{font-family:sans-serif;margin:2em}}.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1em}}
figure{{margin:0;border:1px solid #ddd;padding:.5em}}img{{width:100%}}.notice{{color:#a00;font-weight:bold}}</style></head>
<body><h1>{html.escape(result.query)}</h1>{body}</body></html>
"""
