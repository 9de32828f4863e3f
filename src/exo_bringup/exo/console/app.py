"""The console's web application (Starlette): one page, its data stream, and one STOP.

Endpoints (every one behind the token check when a token is set):

- ``GET /``: the page (``static/index.html``); ``GET /static/...``: its script, style and the vendored uPlot;
- ``GET /api/state?since=N``: one :meth:`exo.console.state.ConsoleState.snapshot` (JSON);
- ``GET /api/stream?since=N``: the same as Server-Sent Events, ``stream_rate_hz`` times a second;
- ``POST /api/stop``: calls the safety monitor's e-stop service (the only write; it needs the header
  ``X-Exo-Stop: 1``, which a cross-site form cannot send).

Nothing else exists: no endpoint resets an e-stop, changes a limit or starts motion (those stay on the
operator's command line, ``exo reset``, or a physical button). With a ``token`` (the console listens beyond
this machine), a request without it (query ``token=``, header ``X-Exo-Token``, or the cookie the page gets when
it is opened with ``?token=``) gets 401. Without one
(127.0.0.1), the ``Host`` header must name this machine, so a web page elsewhere cannot reach the console
through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from exo.console.state import ConsoleState

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Header a STOP request must carry (a plain HTML form from another site cannot set it).
STOP_HEADER = "x-exo-stop"
TOKEN_HEADER = "x-exo-token"
TOKEN_COOKIE = "exo_console_token"


class TokenCheck:
    """ASGI middleware: every HTTP request must present ``token`` (query ``token`` or header ``X-Exo-Token``)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        in_query = request.query_params.get("token") or ""
        given = request.headers.get(TOKEN_HEADER) or in_query or request.cookies.get(TOKEN_COOKIE) or ""
        if not secrets.compare_digest(given.encode(), self.token):
            why = "missing token" if not given else "wrong token"
            response = PlainTextResponse(
                f"401 {why}: this console needs the token printed when it started "
                "(open the address it printed, ending in ?token=...)", status_code=401)
            await response(scope, receive, send)
            return
        if not in_query:
            await self.app(scope, receive, send)
            return
        # the page was opened with ?token=: its script, style and stream then carry it as a cookie that the
        # browser sends to this console only (SameSite=Strict: never with a request another site triggers)
        cookie = f"{TOKEN_COOKIE}={in_query}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def make_app(state: ConsoleState, request_stop: Callable[[], tuple[bool, str]], *, token: str | None = None,
             allowed_hosts: list[str] | None = None, stream_rate_hz: float = 20.0,
             clock: Callable[[], float] = time.monotonic, closing: Callable[[], bool] = lambda: False) -> Starlette:
    """The console's application.

    Args:
        state: what the page shows.
        request_stop: calls the e-stop service (blocking, bounded); ``(ok, message)``. Runs in a worker thread.
        token: required on every request when set (the console listens beyond this machine).
        allowed_hosts: ``Host`` header values accepted (``None`` = any; used with a token).
        stream_rate_hz: events per second of ``/api/stream``, Hz.
        clock: monotonic wall clock, s (whether the data is fresh).
        closing: true once the server shuts down (ends the streams).
    """
    period = 1.0 / stream_rate_hz

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    def _since(request: Request) -> int:
        try:
            return max(0, int(request.query_params.get("since", "0")))
        except ValueError:
            return 0

    async def api_state(request: Request) -> Response:
        return JSONResponse(_clean(state.snapshot(_since(request), clock())))

    async def api_stream(request: Request) -> Response:
        since = _since(request)

        async def events():
            nonlocal since
            while not closing():
                snap = _clean(state.snapshot(since, clock()))
                since = snap["seq"]
                yield f"data: {json.dumps(snap, separators=(',', ':'))}\n\n"
                await asyncio.sleep(period)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def api_stop(request: Request) -> Response:
        if request.headers.get(STOP_HEADER) != "1":
            return PlainTextResponse(f"400 a STOP request needs the header {STOP_HEADER}: 1", status_code=400)
        from starlette.concurrency import run_in_threadpool

        ok, message = await run_in_threadpool(request_stop)
        snap = state.snapshot(1 << 62, clock())
        return JSONResponse({"ok": ok, "message": message, "stop": snap["stop"]}, status_code=200 if ok else 503)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/state", api_state, methods=["GET"]),
        Route("/api/stream", api_stream, methods=["GET"]),
        Route("/api/stop", api_stop, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = []
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    if token:
        middleware.append(Middleware(TokenCheck, token=token))
    return Starlette(routes=routes, middleware=middleware)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
