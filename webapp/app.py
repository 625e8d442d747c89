"""FastAPI app: a search page with thumbnails and scores, `/api/search`, `/api/score`, `/healthz`.

Images are served only from the searchable gallery, by name: no paths, no flagged images.
The routes live on one `APIRouter`. Every request answers from one frozen serving state (searcher and
versions, `tasks/search/serving.py`), which follows retrains when the app is made with `ServingStates`;
`webapp/limits.py` bounds URLs and bodies and adds the security headers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from tasks.html import render
from tasks.search.index import SearchUnavailableError
from tasks.search.searcher import MAX_K, MAX_QUERY_CHARS, Searcher, is_blank
from tasks.search.serving import ServingState, ServingStates
from webapp.limits import SERVING_STATE_KEY, GuardMiddleware, content_security_policy


class ScoreRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The text to score")
    image: str = Field(min_length=1, max_length=255, description="A gallery image name")


def is_plain_name(name: str) -> bool:
    """A file name, not a path: no folder separators, no control characters, not '.' or '..'. Which names exist is
    decided by the index alone (any language, spaces allowed)."""
    return (
        name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name)
    )


def serving(request: Request) -> ServingState:
    """The state this request answers from, taken once; the response headers name it."""
    state = request.app.state.serving.current()
    setattr(request.state, SERVING_STATE_KEY, state)
    return state


router = APIRouter()


@router.get("/healthz")
def healthz(request: Request, state: ServingState = Depends(serving)) -> dict:
    s = state.searcher
    return {
        "status": "ok",
        "champion": s.record.version,
        "model": s.record.kind,
        "gallery": len(s.index.images),
        "hidden": len(s.index.flagged),
        **request.app.state.serving.health(state),
    }


@router.get("/api/search")
def api_search(
    q: str = Query(..., max_length=MAX_QUERY_CHARS, description="What the images should show"),
    k: int = Query(5, ge=1, le=MAX_K, description="How many images"),
    state: ServingState = Depends(serving),
) -> dict:
    if is_blank(q):
        raise HTTPException(status_code=400, detail="query is empty")
    try:
        result = state.searcher.get_pictures(q, k)
    except ValueError as err:
        raise HTTPException(status_code=400, detail=str(err)) from err
    payload = result.as_dict()
    for hit in payload["results"]:
        hit["url"] = "/images/" + quote(hit["image"], safe="")
        hit.pop("path")
    return payload


@router.post("/api/score")
def api_score(body: ScoreRequest, state: ServingState = Depends(serving)) -> dict:
    s = state.searcher
    name = body.image
    if not is_plain_name(name):
        raise HTTPException(status_code=400, detail="image must be a gallery image name, not a path")
    if is_blank(body.text):
        raise HTTPException(status_code=400, detail="text is empty")
    # Only images the index knows (searchable or flagged), so no other file in the folder is read.
    if not s.in_gallery(name) or not (Path(s.index.folder) / name).is_file():
        raise HTTPException(status_code=404, detail=f"no image {name!r} in the gallery")
    result = s.score_gallery_image(body.text, name).as_dict()
    result["image"] = name
    return result


@router.get("/images/{name}")
def image(name: str, state: ServingState = Depends(serving)) -> FileResponse:
    s = state.searcher
    # Only searchable gallery images, by exact name: no traversal, no flagged images.
    if not is_plain_name(name) or not s.searchable(name):
        raise HTTPException(status_code=404, detail="not found")
    path = Path(s.index.folder) / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(path)


def _page() -> str:
    return render("webapp", "search.html.j2")


@router.get("/", response_class=HTMLResponse)
def page() -> str:
    return _page()


def _unavailable(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(err)})


def create_app(
    searcher_factory: Callable[[], Searcher] | None = None, *, states: ServingStates | None = None
) -> FastAPI:
    """Serve `states` (which follow retrains, see `ServingStates.for_workspace`), or one searcher made by
    `searcher_factory` on first use and kept for the app's life."""
    if (searcher_factory is None) == (states is None):
        raise ValueError("give either searcher_factory or states")
    app = FastAPI(title="imgsearch", description="Text-to-image search with a child-safety guarantee")
    app.state.serving = states if states is not None else ServingStates.fixed(searcher_factory)  # type: ignore[arg-type]
    app.add_exception_handler(SearchUnavailableError, _unavailable)
    app.include_router(router)
    app.add_middleware(GuardMiddleware, csp=content_security_policy(_page()))
    return app
