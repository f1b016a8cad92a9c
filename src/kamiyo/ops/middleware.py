"""One pure-ASGI layer, outermost, for every HTTP request: request id, metrics, access log, `/metrics`.

It wraps even Starlette's ServerErrorMiddleware, so an unexpected 500 is counted, carries its
`X-Request-ID` and is logged with it. `/metrics` is answered here, before any other middleware (so it
is never rate-limited) and outside the OpenAPI schema.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kamiyo.app_state import app_state
from kamiyo.logging_setup import direct_json_handler, request_id_var, write_json_line
from kamiyo.ops import metrics
from kamiyo.ops.route_labels import RouteTemplates

access_log = logging.getLogger("kamiyo.access")
log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _RequestIds:
    """32 hex characters: a random per-process prefix and a counter (uuid4 reads the OS's random source for
    every request; ids must be unique, not secret)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4)))

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_request_ids = _RequestIds()


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.routes = RouteTemplates(fastapi_app)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _incoming_request_id(scope) or _request_ids.next()
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        route: str | None = None
        try:
            if scope["path"] == METRICS_PATH and scope["method"] in ("GET", "HEAD"):
                route = METRICS_PATH
                await self._serve_metrics(send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except BaseException:
            status = 500
            self._observe(scope, route, status, start)
            raise  # the request id stays set, so the server's own error line carries it too
        self._observe(scope, route, status, start)
        request_id_var.reset(token)

    def _observe(self, scope: Scope, route: str | None, status: int, start: float) -> None:
        seconds = time.perf_counter() - start
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        if route is None:
            route = self.routes.template(scope, status)
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                metrics.HTTP_DURATION.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        duration_ms = round(seconds * 1000, 2)
        fields = {"method": method, "route": route, "status": status, "duration_ms": duration_ms}
        handler = direct_json_handler(access_log)
        if handler is not None:  # method, route template, status and duration: nothing to redact
            write_json_line(handler, access_log.name, f"{method} {route} {status} {duration_ms:.1f}ms", fields)
        else:
            access_log.info("%s %s %s %.1fms", method, route, status, duration_ms, extra=fields)

    async def _serve_metrics(self, send: Send) -> None:
        queue = await self._sample_queues()
        body = metrics.render(queue)
        headers = [(b"content-type", metrics.CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _sample_queues(self) -> metrics.QueueSample | None:
        db = getattr(app_state(self.fastapi_app), "db", None)  # none before start-up
        if db is None:
            return None
        try:
            async with db.sessionmaker() as session:
                return await metrics.sample_queues(session)
        except Exception as exc:  # metrics must answer while the database is down
            log.warning("metrics: database unavailable: %s", type(exc).__name__)
            return None


def install_observability(app: FastAPI) -> None:
    """Wrap the app's whole middleware stack (outside ServerErrorMiddleware) with ObservabilityMiddleware."""
    build_inner = app.build_middleware_stack

    def build() -> ASGIApp:
        return ObservabilityMiddleware(build_inner(), app)

    app.build_middleware_stack = build  # type: ignore[method-assign]
