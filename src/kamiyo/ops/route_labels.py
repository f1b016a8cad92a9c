"""The route template of a handled request (`/api/v1/exploits/{ref}`), for metric labels and access logs.

Raw paths must never become labels (unbounded cardinality, and paths can carry identifiers), so a
request that matched no route is `unmatched`. Since FastAPI 0.137 `include_router` is lazy: the
matched route in `scope["route"]` is the original one, without the include prefix. The full
templates join the include prefixes to the route's own path; a route included several times
(root and `/api/v1`) is disambiguated by which of its full templates matches the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from starlette.routing import compile_path

UNMATCHED = "unmatched"

_Template = tuple[re.Pattern[str] | None, str]


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[Any, re.Pattern[str] | None, str]]:
    """(original route, full path regex, full template) for every route, expanding included routers.

    Prefixes are joined by hand rather than through FastAPI's effective route contexts: building
    those analyses every handler's dependencies (about 2 ms a route), which a fresh app would pay
    on its first request for routes it may never serve."""
    for route in routes:
        included, context = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if included is not None and context is not None:
            yield from _walk(included.routes, prefix + context.prefix)
            continue
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if path:
            regex = compile_path(prefix + path)[0] if prefix else getattr(route, "path_regex", None)
            yield route, regex, prefix + path


class RouteTemplates:
    """Maps the matched route object (or, for routes the router does not report, the path) to its template."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._by_route: dict[int, list[_Template]] | None = None
        self._unreported: list[_Template] = []

    def _build(self) -> dict[int, list[_Template]]:
        by_route: dict[int, list[_Template]] = {}
        unreported: list[_Template] = []
        for original, regex, template in _walk(getattr(self.app, "routes", ())):
            by_route.setdefault(id(original), []).append((regex, template))
            unreported.append((regex, template))
        self._unreported = unreported
        self._by_route = by_route
        return by_route

    def template(self, scope: MutableMapping[str, Any], status: int) -> str:
        by_route = self._by_route if self._by_route is not None else self._build()
        path: str = scope.get("path", "")
        route = scope.get("route")
        if route is not None:
            candidates = by_route.get(id(route))
            if candidates:
                if len(candidates) == 1:
                    return candidates[0][1]
                for regex, template in candidates:
                    if regex is not None and regex.match(path):
                        return template
                return candidates[0][1]
            fallback = getattr(route, "path_format", None)
            return fallback if isinstance(fallback, str) else UNMATCHED
        if status == 404:
            return UNMATCHED
        # Plain Starlette routes (docs, openapi.json) may not be reported in the scope.
        for regex, template in self._unreported:
            if regex is not None and regex.match(path):
                return template
        return UNMATCHED
