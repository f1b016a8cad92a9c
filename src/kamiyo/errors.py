"""One error type carrying its HTTP status, one handler, one JSON shape: {"error": {code, message, details?}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kamiyo.kit.jsonresp import FastJSONResponse
from kamiyo.ops.dberrors import CANDIDATES, database_failure

log = logging.getLogger(__name__)


# The standard code of each status: what an HTTP error answers, and a KamiyoError's code unless it names one.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


class KamiyoError(Exception):
    """An answer other than success; a subclass that sets only `status` gets that status's standard code."""

    status: int = 400
    code: str = "bad_request"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "status" in vars(cls) and "code" not in vars(cls):
            cls.code = _STATUS_CODES.get(cls.status, cls.code)

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers


class NotFound(KamiyoError):
    status = 404


class InvalidInput(KamiyoError):
    status = 422


class Conflict(KamiyoError):
    status = 409


class Unavailable(KamiyoError):
    status = 503


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        details.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid value")})
    return details


def _reply(request: Request, body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """The JSON error shape; browser pages may render it as HTML through the app's `html_error_renderer` hook."""
    render = getattr(request.app.state, "html_error_renderer", None)
    page: Response | None = render(request, status, body["error"]["code"], body["error"]["message"]) if render else None
    if page is None:
        return FastJSONResponse(body, status, headers=headers)
    page.headers.update(headers or {})
    return page


def error_response(
    request: Request, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The one error answer, for layers outside the exception handlers (e.g. ASGI middleware)."""
    return _reply(request, error_body(code, message, details), status, headers)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. `not_found`."},
                "message": {"type": "string", "description": "Human-readable explanation."},
                "details": {"description": "Optional structured details (e.g. the invalid fields)."},
            },
        }
    },
}
# Statuses any operation can answer: a bad key (the access layer checks every request), a rate limit, an outage.
COMMON_ERRORS = {
    "401": "Missing, invalid or revoked API key (`WWW-Authenticate: Bearer`)",
    "429": "Rate limit exceeded; see `Retry-After`",
    "503": "A needed service (e.g. the database) is unavailable; retry later",
}


def _error_response(description: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {"description": description, "content": content}


def document_errors(app: FastAPI) -> None:
    """Make /openapi.json tell the truth about errors: one `Error` shape (also for 422, instead of FastAPI's
    default), the statuses every operation can meet, and 404 wherever a path names an object."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = _error_response("Invalid parameters or body")
                wanted = dict(COMMON_ERRORS)
                if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                    wanted["404"] = "No such object (or not yours)"
                if "requestBody" in operation:
                    wanted["400"] = "Body is not well-formed (e.g. not JSON)"
                for status, description in wanted.items():
                    existing = responses.setdefault(status, _error_response(description))
                    existing.setdefault("content", _error_response(description)["content"])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KamiyoError)
    async def _kamiyo(request: Request, exc: KamiyoError) -> Response:
        return _reply(request, error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        first = details[0] if details else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return _reply(request, error_body("invalid", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource"
        return _reply(request, error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))

    async def _database(request: Request, exc: Exception) -> Response:
        """A database outage answers 503 here, inside the middleware stack (counted and logged as a 503)."""
        failure = database_failure(exc)
        if failure is None:
            raise exc
        name = type(exc).__name__
        log.warning("database unavailable on %s %s: %s (%s)", request.method, request.url.path, name, failure.reason)
        headers = {"Retry-After": "5"} if failure.retryable else None
        body = error_body("database_unavailable", failure.message, {"reason": failure.reason})
        return _reply(request, body, 503, headers=headers)

    for exc_class in CANDIDATES:
        app.add_exception_handler(exc_class, _database)
    document_errors(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if database_failure(exc) is not None:  # e.g. raised while a streaming answer had started
            return _reply(request, error_body("database_unavailable", "the database is unavailable"), 503)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _reply(request, error_body("internal", "internal error"), 500)
