"""FastAPI app: the search page (`/`, its script and style under `/static/`), `/api/search`, `/api/info`,
`/api/score` and its page `/score`, `/healthz`, and the API's Swagger UI at `/docs`, served from this server (no CDN).

Images are served only from the searchable gallery, by name: no paths, no flagged images.
The routes live on one `APIRouter`. Every request answers from one frozen serving state (searcher and
versions, `tasks/search/serving.py`), which follows retrains when the app is made with `ServingStates`;
`webapp/limits.py` bounds URLs and bodies and adds the security headers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from tasks.html import render
from tasks.search.index import SearchUnavailableError
from tasks.search.searcher import MAX_K, MAX_QUERY_CHARS, Searcher, is_blank
from tasks.search.serving import ServingState, ServingStates
from webapp.explain import EXAMPLE_QUERIES, SCORE_BANDS, band_of
from webapp.limits import (
    DOCS_CSP,
    MAX_UPLOAD_BYTES,
    PAGE_CSP,
    REPORT_CSP,
    SCORE_CSP,
    SERVING_STATE_KEY,
    GuardMiddleware,
)

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI's script and style, from the fastapi-offline package (the swagger-ui-dist files FastAPI's own
# /docs takes from a CDN), so /docs works on a machine with no internet.
SWAGGER_UI_URL = "/static/swagger-ui"


def swagger_ui_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


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
        return search_answer(state.searcher, q, k)
    except ValueError as err:
        raise HTTPException(status_code=400, detail=str(err)) from err


def search_answer(searcher: Searcher, q: str, k: int) -> dict:
    """`/api/search`'s answer: the search result with each hit's url, rank, band and own captions, no path."""
    payload = searcher.get_pictures(q, k).as_dict()
    # Results are searchable images only (the index holds no others), so their captions may be shown.
    captions = searcher.captions_of([hit["image"] for hit in payload["results"]])
    for rank, hit in enumerate(payload["results"], start=1):
        band = band_of(hit["score"])
        hit.pop("path")
        hit.update(
            url="/images/" + quote(hit["image"], safe=""),
            rank=rank,
            band=band.name,
            band_label=band.label,
            captions=captions[hit["image"]],
        )
    return payload


def gallery_info(state: ServingState) -> dict:
    """What the page's empty state tells: how many images are searchable and hidden, the refusal notice, the
    score bands and example queries."""
    from tasks.safety.text_screen import NOTICE

    index = state.searcher.index
    return {
        "gallery": len(index.images),
        "hidden": len(index.flagged),
        "notice": NOTICE,
        "examples": list(EXAMPLE_QUERIES),
        "bands": [
            {"name": b.name, "label": b.label, "at_least": b.at_least, "meaning": b.meaning} for b in SCORE_BANDS
        ],
        "max_k": MAX_K,
        "max_query_chars": MAX_QUERY_CHARS,
    }


@router.get("/api/info")
def api_info(state: ServingState = Depends(serving)) -> dict:
    return gallery_info(state)


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
    if result["score"] is not None:
        band = band_of(result["score"])
        result.update(band=band.name, band_label=band.label, band_meaning=band.meaning)
    return result


@router.post("/api/score/upload")
async def api_score_upload(
    request: Request,
    text: str = Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The text to score"),
    state: ServingState = Depends(serving),
) -> dict:
    """Score `text` against an image file sent as the request body (any format Pillow reads, at most 8 MiB).

    The file is a new image to the safety decision: no caption vouches for it, so it is refused at the
    detector's high-recall threshold (and when its bytes are a hidden dataset image), as `imgsearch score`
    does for a path. It is written to a private temporary folder, deleted after scoring, and its vectors stay
    out of the workspace's embedding cache (`Searcher.score_uploaded_file`).
    """
    import io
    import tempfile

    from PIL import Image, UnidentifiedImageError
    from starlette.concurrency import run_in_threadpool

    if is_blank(text):
        raise HTTPException(status_code=400, detail="text is empty")
    data = await request.body()
    if not data:
        raise HTTPException(status_code=400, detail="no image: send the image file as the request body")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
            kind = (probe.format or "img").lower()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise HTTPException(status_code=400, detail=f"the body is not an image Pillow can read: {err}") from err
    with tempfile.TemporaryDirectory(prefix="imgsearch-upload-") as folder:
        path = Path(folder) / f"upload.{kind}"
        path.write_bytes(data)
        scored = await run_in_threadpool(state.searcher.score_uploaded_file, text, path)
    result = scored.as_dict()
    result["image"] = "uploaded image"
    if result["score"] is not None:
        band = band_of(result["score"])
        result.update(band=band.name, band_label=band.label, band_meaning=band.meaning)
    return result


# What /reports/ serves: the EDA reports (`eda/<dataset version>/`) and the training reports (`training/`), their
# HTML pages and PNG plots only. Neither holds a photo, so nothing there can show a child.
REPORT_KINDS = {"eda": 2, "training": 1}  # kind -> path segments after it
REPORT_SUFFIXES = {".html", ".png"}


@router.get("/reports/{kind}/{rest:path}", include_in_schema=False)
def report_file(kind: str, rest: str, request: Request) -> FileResponse:
    """The workspace's EDA and training reports over HTTP, so the dashboard's link artifacts open them."""
    parts = rest.split("/")
    if (
        REPORT_KINDS.get(kind) != len(parts)
        or not all(is_plain_name(part) for part in parts)
        or Path(parts[-1]).suffix not in REPORT_SUFFIXES
    ):
        raise HTTPException(status_code=404, detail="not found")
    reports = request.app.state.reports_dir or serving(request).searcher.workspace.reports
    path = Path(reports, kind, *parts)
    if not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(path)


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


@router.get("/", response_class=HTMLResponse)
def page(request: Request) -> str:
    """The page with its empty state filled in on the server, so it reads right before any script runs; a
    server with no champion or index yet still shows the page, with the reason instead of the gallery."""
    try:
        info, unavailable = gallery_info(serving(request)), ""
    except SearchUnavailableError as err:
        info, unavailable = None, str(err)
    return render(
        "webapp",
        "search.html.j2",
        info=info,
        unavailable=unavailable,
        examples=EXAMPLE_QUERIES,
        bands=SCORE_BANDS,
        max_k=MAX_K,
        max_query_chars=MAX_QUERY_CHARS,
    )


MAX_LISTED_IMAGES = 1000  # gallery names the /score page offers to pick from (any other name can be typed)


@router.get("/score", response_class=HTMLResponse)
def score_page(request: Request) -> str:
    """A page for `POST /api/score`: a text and a gallery image (`?text=&image=` fill it in), the score in words
    or the refusal with its reason (`webapp/static/score.js`)."""
    try:
        state, unavailable = serving(request), ""
        names = state.searcher.index.images[:MAX_LISTED_IMAGES]
    except SearchUnavailableError as err:
        names, unavailable = [], str(err)
    return render(
        "webapp",
        "score.html.j2",
        images=names,
        unavailable=unavailable,
        bands=SCORE_BANDS,
        max_query_chars=MAX_QUERY_CHARS,
    )


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs(request: Request) -> str:
    """FastAPI's "self-hosting JavaScript and CSS for docs" with the assets served here; the page is our own
    template because FastAPI's `get_swagger_ui_html` starts Swagger UI with an inline script, which the CSP
    refuses (`webapp/static/docs.js` does it instead)."""
    return render(
        "webapp",
        "docs.html.j2",
        title=request.app.title,
        assets=SWAGGER_UI_URL,
        openapi_url=request.app.openapi_url,
    )


def _unavailable(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(err)})


def create_app(
    searcher_factory: Callable[[], Searcher] | None = None,
    *,
    states: ServingStates | None = None,
    reports_dir: Path | None = None,
) -> FastAPI:
    """Serve `states` (which follow retrains, see `ServingStates.for_workspace`), or one searcher made by
    `searcher_factory` on first use and kept for the app's life. `reports_dir` is the workspace's reports
    folder for /reports/ (default: the serving searcher's)."""
    if (searcher_factory is None) == (states is None):
        raise ValueError("give either searcher_factory or states")
    app = FastAPI(
        title="imgsearch",
        description="Text-to-image search with a child-safety guarantee",
        docs_url=None,  # the router's /docs, with Swagger UI served from here
        redoc_url=None,  # ReDoc would load its script and fonts from CDNs
    )
    app.state.serving = states if states is not None else ServingStates.fixed(searcher_factory)  # type: ignore[arg-type]
    app.state.reports_dir = reports_dir
    app.add_exception_handler(SearchUnavailableError, _unavailable)
    app.include_router(router)
    app.mount(SWAGGER_UI_URL, StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        GuardMiddleware,
        csp=PAGE_CSP,
        csp_by_path={"/docs": DOCS_CSP, "/score": SCORE_CSP},
        body_limit_by_path={"/api/score/upload": MAX_UPLOAD_BYTES},
        csp_by_prefix={"/reports/": REPORT_CSP},
    )
    return app
