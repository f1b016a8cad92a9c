"""The app's shared objects, typed: what `create_app` and its start-up make once and every request reads.

`create_app` makes an `AppState` the app's `state`; code reads it through `app_state(request or app)`, so mypy
checks each field's type where it is used. It stays a Starlette `State`, so middleware and handlers that only
read an attribute (`app.state.db`) see the same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from limits import RateLimitItem
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.kit.ratelimit import Limiter


class Stoppable(Protocol):
    """What the app's shutdown needs of a live-stream hub (kamiyo.stream.hub.StreamHub, a layer above this one)."""

    async def stop(self) -> None: ...


HtmlErrorRenderer = Callable[[Request, int, str, str], Response | None]  # (request, status, code, message)


class AppState(State):
    """One app's shared objects. Those marked "at start-up" exist once the lifespan has begun."""

    settings: Settings
    db: Database  # at start-up (given to create_app, or opened from settings.database_url)
    limiter: Limiter  # at start-up (Redis when configured, else memory)
    anon_rate: RateLimitItem  # at start-up: the per-client limit of visitors
    workers: dict[str, Any]  # each background worker's state, as /health shows it
    stream_hub: Stoppable | None  # the StreamHub made by the first live stream
    html_error_renderer: HtmlErrorRenderer | None  # the dashboard's HTML error pages, for page paths
    secret: bytes | None  # the signing secret, read once on first use

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.workers = {}
        self.stream_hub = None
        self.html_error_renderer = None
        self.secret = None


def app_state(where: HTTPConnection | Starlette) -> AppState:
    """The state of the app serving this request (or of this app)."""
    state = (where.app if isinstance(where, HTTPConnection) else where).state
    if not isinstance(state, AppState):
        raise TypeError("not an app made by kamiyo.app.create_app")
    return state
