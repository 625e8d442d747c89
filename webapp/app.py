"""FastAPI app: a search page with thumbnails and scores, `/api/search`, `/api/score`, `/healthz`.

Images are served only from the searchable gallery, by name: no paths, no flagged images.
The routes live on one `APIRouter`; the app holds the searcher, made on first use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from tasks.html import render
from tasks.search.index import SearchUnavailableError
from tasks.search.searcher import MAX_K, MAX_QUERY_CHARS, Searcher

SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # used with fullmatch: "$" would let a trailing newline through


class ScoreRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The text to score")
    image: str = Field(min_length=1, max_length=255, description="A gallery image name")


class LazySearcher:
    """Makes the searcher on first use (loading models takes seconds) and shares it between requests."""

    def __init__(self, factory: Callable[[], Searcher]):
        self._factory = factory
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    def get(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = self._factory()
            return self._searcher


def searcher_of(request: Request) -> Searcher:
    return request.app.state.searcher.get()


router = APIRouter()


@router.get("/healthz")
def healthz(request: Request) -> dict:
    s = searcher_of(request)
    return {
        "status": "ok",
        "champion": s.record.version,
        "model": s.record.kind,
        "gallery": len(s.index.images),
        "hidden": len(s.index.flagged),
    }


@router.get("/api/search")
def api_search(
    request: Request,
    q: str = Query(..., max_length=MAX_QUERY_CHARS, description="What the images should show"),
    k: int = Query(5, ge=1, le=MAX_K, description="How many images"),
) -> dict:
    if not q.strip():
        raise HTTPException(status_code=400, detail="query is empty")
    try:
        result = searcher_of(request).get_pictures(q, k)
    except ValueError as err:
        raise HTTPException(status_code=400, detail=str(err)) from err
    payload = result.as_dict()
    for hit in payload["results"]:
        hit["url"] = f"/images/{hit['image']}"
        hit.pop("path")
    return payload


@router.post("/api/score")
def api_score(request: Request, body: ScoreRequest) -> dict:
    s = searcher_of(request)
    name = body.image
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise HTTPException(status_code=400, detail="image must be a gallery image name, not a path")
    if not body.text.strip():
        raise HTTPException(status_code=400, detail="text is empty")
    path = Path(s.index.folder) / name
    # Only images the index knows (searchable or flagged), so no other file in the folder is read.
    if not s.in_gallery(name) or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no image {name!r} in the gallery")
    result = s.score(body.text, path).as_dict()
    result["image"] = name
    return result


@router.get("/images/{name}")
def image(request: Request, name: str) -> FileResponse:
    s = searcher_of(request)
    # Only searchable gallery images, by exact name: no traversal, no flagged images.
    if not SAFE_NAME.fullmatch(name) or not s.searchable(name):
        raise HTTPException(status_code=404, detail="not found")
    path = Path(s.index.folder) / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(path)


@router.get("/", response_class=HTMLResponse)
def page() -> str:
    return render("webapp", "search.html.j2")


def _unavailable(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(err)})


def create_app(searcher_factory: Callable[[], Searcher]) -> FastAPI:
    """The searcher is made on first use (loading models takes seconds) and shared by all requests."""
    app = FastAPI(title="imgsearch", description="Text-to-image search with a child-safety guarantee")
    app.state.searcher = LazySearcher(searcher_factory)
    app.add_exception_handler(SearchUnavailableError, _unavailable)
    app.include_router(router)
    return app
