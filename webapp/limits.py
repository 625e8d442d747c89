"""Request limits and response headers, below the routes: bodies over 16 KiB get 413, URLs over 8 KiB get 414,
and every response carries the security headers and names the serving state that answered.

Two layers: `GuardMiddleware` (ASGI) for what reaches the app, and `BoundedH11Protocol` for a request head too
long for the HTTP parser, which uvicorn would otherwise answer by closing the connection while the client is
still sending (the client sees a reset, not a status): it reads the rest of the head, then answers 414 or 431.
"""

from __future__ import annotations

from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY_BYTES = 16 * 1024  # /api/score takes a text of at most 500 characters and an image name
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # /api/score/upload: one image file as the body
MAX_URL_BYTES = 8 * 1024  # path and query string; a query is at most 500 characters, percent-encoded at most 4.5 KiB
MAX_HEAD_BYTES = 15 * 1024  # request line and headers; under h11's own 16 KiB limit, so h11 never sees more
MAX_DRAIN_BYTES = 64 * 1024 * 1024  # a head longer than this is cut off by closing the connection

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# Nothing but this server's own resources. Pages load their script and style as files from /static/
# (`PAGE_CSP`), so no inline script or style is ever allowed: neither 'unsafe-inline' nor hashes.
BASE_CSP = "default-src 'none'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; " + (
    "frame-ancestors 'none'"
)
PAGE_CSP = (BASE_CSP + "; script-src 'self'; style-src 'self'").encode()
# Swagger UI's stylesheet draws its icons from data: URLs; nothing else differs.
DOCS_CSP = PAGE_CSP.replace(b"img-src 'self'", b"img-src 'self' data:")
# The HTML reports under /reports/ (EDA, training) carry their style inline and have no script at all.
REPORT_CSP = b"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; " + (
    b"frame-ancestors 'none'"
)
# The /score page shows a picture the user picked from their own disk (an object URL) before it is scored.
SCORE_CSP = PAGE_CSP.replace(b"img-src 'self'", b"img-src 'self' blob:")


SERVING_STATE_KEY = "imgsearch_serving"  # request.state key of the ServingState a request answers from


def _plain_response(status: int, text: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        (b"content-security-policy", BASE_CSP.encode()),
    ]
    return headers, body


class GuardMiddleware:
    """Limits on the URL and the body, security headers on every response, `X-Imgsearch-Model` / `-Index`."""

    def __init__(
        self,
        app: ASGIApp,
        csp: bytes = BASE_CSP.encode(),
        csp_by_path: dict[str, bytes] | None = None,
        body_limit_by_path: dict[str, int] | None = None,
        csp_by_prefix: dict[str, bytes] | None = None,
    ):
        self.app = app
        # pages under a path prefix (say "/reports/") that need another policy than `csp`
        self.headers_by_prefix = {
            prefix: [*SECURITY_HEADERS, (b"content-security-policy", policy)]
            for prefix, policy in (csp_by_prefix or {}).items()
        }
        self.body_limit_by_path = body_limit_by_path or {}
        self.headers = [*SECURITY_HEADERS, (b"content-security-policy", csp)]
        # a page that needs another policy than `csp`, by exact path
        self.headers_by_path = {
            path: [*SECURITY_HEADERS, (b"content-security-policy", policy)]
            for path, policy in (csp_by_path or {}).items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string") or b"")
        if url_bytes > MAX_URL_BYTES:
            await self._reply(send, 414, f"URL too long: {url_bytes} bytes, at most {MAX_URL_BYTES}")
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        limit = self.body_limit_by_path.get(scope["path"], MAX_BODY_BYTES)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit() and int(declared) <= MAX_DRAIN_BYTES:
                await self._discard(receive, more=True)
            await self._reply(send, 413, f"request body too large: at most {limit} bytes")
            return
        # A body is read here, up to the bound, before the app sees it (a chunked one declares no length).
        has_body = (
            scope["method"] not in ("GET", "HEAD", "OPTIONS") or declared is not None or b"transfer-encoding" in headers
        )
        body = bytearray()
        more = has_body
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._discard(receive, more)
                await self._reply(send, 413, f"request body too large: at most {limit} bytes")
                return
        replayed = not has_body

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self._headers_for(scope["path"]))
                serving = state.get(SERVING_STATE_KEY)
                if serving is not None:
                    headers.append((b"x-imgsearch-model", serving.model_version.encode("latin-1", "replace")))
                    headers.append((b"x-imgsearch-index", serving.index_version.encode("latin-1", "replace")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, replay, send_with_headers)

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        if path in self.headers_by_path:
            return self.headers_by_path[path]
        for prefix, headers in self.headers_by_prefix.items():
            if path.startswith(prefix):
                return headers
        return self.headers

    @staticmethod
    async def _discard(receive: Receive, more: bool) -> None:
        """Read the rest of a refused body (up to MAX_DRAIN_BYTES): a reply while the client is still sending
        ends in a connection reset on its side instead of the 413."""
        seen = 0
        while more and seen <= MAX_DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)

    @staticmethod
    async def _reply(send: Send, status: int, text: str) -> None:  # before the app: the plain policy
        headers, body = _plain_response(status, text)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, except that a request head over MAX_HEAD_BYTES is read to its end (up to
    MAX_DRAIN_BYTES) and answered 414 (request line too long) or 431 (headers too long), then the connection
    closes. Reading it first matters: closing with unread input makes the kernel reset the connection, and
    the client never sees the status."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head = bytearray()
        self._draining = False
        self._drained = 0
        self._tail = b""
        self._status = 414

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drain(data)
            return
        if self.conn.their_state is h11.IDLE:  # a request head is coming in
            self._head += data
            end = self._head.find(b"\r\n\r\n")  # the head ends here; what follows is a body
            if (end if end != -1 else len(self._head)) > MAX_HEAD_BYTES:
                self._unset_keepalive_if_required()
                line_end = self._head.find(b"\r\n")
                self._status = 414 if line_end == -1 or line_end > MAX_URL_BYTES else 431
                self._draining = True
                head, self._head = bytes(self._head), bytearray()
                self._drain(head)
                return
            if end != -1:
                self._head = bytearray()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._head = bytearray()

    def _drain(self, data: bytes) -> None:
        window = self._tail + data
        self._drained += len(data)
        if b"\r\n\r\n" in window or self._drained > MAX_DRAIN_BYTES:
            self._reject()
        else:
            self._tail = window[-3:]

    def _reject(self) -> None:
        if self._status == 414:
            headers, body = _plain_response(414, f"URL too long: at most {MAX_URL_BYTES} bytes")
            line = b"HTTP/1.1 414 URI Too Long\r\n"
        else:
            headers, body = _plain_response(431, f"request headers too long: at most {MAX_HEAD_BYTES} bytes")
            line = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        head = b"".join(name + b": " + value + b"\r\n" for name, value in [*headers, (b"connection", b"close")])
        self.transport.write(line + head + b"\r\n" + body)
        self.transport.close()
        self._draining = False


def uvicorn_config(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, **options: Any):
    """uvicorn's settings for this app: the bounded h11 protocol, so an overlong head gets its status."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=BoundedH11Protocol, **options)
