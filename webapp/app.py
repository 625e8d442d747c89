"""FastAPI app: a search page with thumbnails and scores, `/api/search`, `/api/score`, `/healthz`.

Images are served only from the searchable gallery, by name: no paths, no flagged images.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from tasks.search.index import SearchUnavailableError
from tasks.search.searcher import MAX_K, MAX_QUERY_CHARS, Searcher

SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # used with fullmatch: "$" would let a trailing newline through


class ScoreRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The text to score")
    image: str = Field(min_length=1, max_length=255, description="A gallery image name")


def create_app(searcher_factory: Callable[[], Searcher]) -> FastAPI:
    """The searcher is made on first use (loading models takes seconds) and shared by all requests."""
    app = FastAPI(title="imgsearch", description="Text-to-image search with a child-safety guarantee")
    state: dict = {}
    lock = threading.Lock()

    @app.exception_handler(SearchUnavailableError)
    def _unavailable(request: Request, err: SearchUnavailableError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(err)})

    def searcher() -> Searcher:
        with lock:
            if "searcher" not in state:
                state["searcher"] = searcher_factory()
            return state["searcher"]

    @app.get("/healthz")
    def healthz() -> dict:
        s = searcher()
        return {
            "status": "ok",
            "champion": s.record.version,
            "model": s.record.kind,
            "gallery": len(s.index.images),
            "hidden": len(s.index.flagged),
        }

    @app.get("/api/search")
    def api_search(
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="What the images should show"),
        k: int = Query(5, ge=1, le=MAX_K, description="How many images"),
    ) -> dict:
        if not q.strip():
            raise HTTPException(status_code=400, detail="query is empty")
        try:
            result = searcher().get_pictures(q, k)
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        payload = result.as_dict()
        for hit in payload["results"]:
            hit["url"] = f"/images/{hit['image']}"
            hit.pop("path")
        return payload

    @app.post("/api/score")
    def api_score(request: ScoreRequest) -> dict:
        s = searcher()
        name = request.image
        if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
            raise HTTPException(status_code=400, detail="image must be a gallery image name, not a path")
        if not request.text.strip():
            raise HTTPException(status_code=400, detail="text is empty")
        path = Path(s.index.folder) / name
        # Only images the index knows (searchable or flagged), so no other file in the folder is read.
        if not s.in_gallery(name) or not path.is_file():
            raise HTTPException(status_code=404, detail=f"no image {name!r} in the gallery")
        result = s.score(request.text, path).as_dict()
        result["image"] = name
        return result

    @app.get("/images/{name}")
    def image(name: str) -> FileResponse:
        s = searcher()
        # Only searchable gallery images, by exact name: no traversal, no flagged images.
        if not SAFE_NAME.fullmatch(name) or not s.searchable(name):
            raise HTTPException(status_code=404, detail="not found")
        path = Path(s.index.folder) / name
        if not path.is_file():
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(path)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return SEARCH_PAGE

    return app


SEARCH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imgsearch</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;padding:0 1rem}
 form{display:flex;gap:.5rem} input[type=text]{flex:1;padding:.5rem;font-size:1rem}
 #results{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:1rem;margin-top:1rem}
 figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:.5rem} img{width:100%;height:auto;display:block}
 figcaption{font-size:.85rem;color:#333;margin-top:.25rem} #notice{color:#a00;font-weight:bold;margin-top:1rem}
</style></head>
<body>
<h1>imgsearch</h1>
<form id="search"><input id="q" type="text" name="q" placeholder="a dog jumps over a fence" maxlength="500" autofocus>
<select id="k" name="k"><option>5</option><option>10</option><option>20</option></select>
<button id="go" type="submit">Search</button></form>
<div id="notice" role="alert"></div>
<div id="results"></div>
<script>
const form = document.getElementById('search');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const q = document.getElementById('q').value, k = document.getElementById('k').value;
  const notice = document.getElementById('notice'), results = document.getElementById('results');
  notice.textContent = ''; results.innerHTML = '';
  const response = await fetch('/api/search?' + new URLSearchParams({q, k}));
  const body = await response.json();
  if (!response.ok) { notice.textContent = typeof body.detail === 'string' ? body.detail : 'bad request'; return; }
  if (body.refused) { notice.textContent = body.notice; return; }
  for (const hit of body.results) {
    const fig = document.createElement('figure'); fig.className = 'hit';
    const img = document.createElement('img'); img.src = hit.url; img.alt = hit.image;
    const cap = document.createElement('figcaption'); cap.textContent = hit.image + ' — score ' + hit.score.toFixed(3);
    fig.append(img, cap); results.append(fig);
  }
  if (!body.results.length) notice.textContent = 'No images.';
});
</script>
</body></html>
"""
