"""The explorer's query string, parsed exactly like `GET /exploits` but with errors kept per field.

The API's own `exploit_filters` does the parsing; its `Query(...)` constraints are read from its
signature and applied with pydantic here, so a value the API refuses with 422 is refused here too,
as a message next to the field instead of an error page.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from kamiyo.errors import InvalidInput
from kamiyo.exploits.filters import SORTS, ExploitFilters
from kamiyo.exploits.router import exploit_filters
from kamiyo.web.form_messages import field_message

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE = 100_000
LIST_FIELDS = ("chain", "category", "target_type")


@dataclass(slots=True)
class ExplorerQuery:
    filters: ExploitFilters
    sort: str = "-timestamp"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    values: dict[str, list[str]] = field(default_factory=dict)  # what the form shows back
    errors: dict[str, str] = field(default_factory=dict)

    def first(self, name: str) -> str:
        return (self.values.get(name) or [""])[0]

    def selected(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def url(self, base: str = "/app/exploits", **change: Any) -> str:
        """This query with some parameters changed (None removes one); defaults are left out of the URL."""
        params: dict[str, Any] = {k: v for k, v in self.values.items() if v}
        params.update(sort=[self.sort], page=[str(self.page)], page_size=[str(self.page_size)])
        for key, value in change.items():
            params[key] = [] if value is None else [str(value)]
        defaults = {"sort": "-timestamp", "page": "1", "page_size": str(DEFAULT_PAGE_SIZE)}
        pairs = [(k, v) for k, vs in params.items() for v in vs if v and defaults.get(k) != v]
        return f"{base}?{urlencode(pairs)}" if pairs else base

    @property
    def active(self) -> bool:
        return any(self.values.get(k) for k in self.values)


@cache
def _adapters() -> dict[str, TypeAdapter[Any]]:
    hints = typing.get_type_hints(exploit_filters, include_extras=True)
    return {name: TypeAdapter(hint) for name, hint in hints.items() if name != "return"}


def _raw_values(params: QueryParams) -> dict[str, list[str]]:
    """Non-empty values of the filter fields: a GET form submits every field, empty ones too."""
    values: dict[str, list[str]] = {}
    for name in _adapters():
        items = [v.strip() for v in params.getlist(name) if v.strip()]
        if name in LIST_FIELDS:
            items = [part.strip() for item in items for part in item.split(",") if part.strip()]
        if items:
            values[name] = items
    return values


def _validated(values: dict[str, list[str]], errors: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, adapter in _adapters().items():
        items = values.get(name)
        if not items:
            continue
        try:
            kwargs[name] = adapter.validate_python(items if name in LIST_FIELDS else items[0])
        except ValidationError as exc:
            errors[name] = field_message(exc.errors()[0])
    return kwargs


def _int_choice(text: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high)


def parse_explorer(params: QueryParams) -> ExplorerQuery:
    values = _raw_values(params)
    errors: dict[str, str] = {}
    kwargs = _validated(values, errors)
    filters = ExploitFilters()
    if not errors:
        try:
            filters = exploit_filters(**kwargs)
        except InvalidInput as exc:
            field_name = exc.message.split(":", 1)[0]
            text = exc.message.split(":", 1)[-1].strip()
            errors[field_name if field_name in _adapters() else "form"] = text[:1].upper() + text[1:]
    sort = params.get("sort") or "-timestamp"
    if sort not in SORTS:
        errors["sort"] = f"must be one of {', '.join(SORTS)}"
        sort = "-timestamp"
    page_size = _int_choice(params.get("page_size"), DEFAULT_PAGE_SIZE, 1, 500)
    page = _int_choice(params.get("page"), 1, 1, MAX_PAGE)
    return ExplorerQuery(filters, sort, page, page_size, values, errors)
