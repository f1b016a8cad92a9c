"""One error type carrying its HTTP status, one handler, one JSON shape: {"error": {code, message, details?}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kamiyo.kit.jsonresp import FastJSONResponse

log = logging.getLogger(__name__)


class KamiyoError(Exception):
    status: int = 400
    code: str = "bad_request"

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
    code = "not_found"


class InvalidInput(KamiyoError):
    status = 422
    code = "invalid"


class Conflict(KamiyoError):
    status = 409
    code = "conflict"


class Unavailable(KamiyoError):
    status = 503
    code = "unavailable"


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KamiyoError)
    async def _kamiyo(_: Request, exc: KamiyoError) -> FastJSONResponse:
        return FastJSONResponse(error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return FastJSONResponse(error_body("invalid", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource"
        return FastJSONResponse(error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        from sqlalchemy.exc import DBAPIError, OperationalError

        if isinstance(exc, OperationalError | DBAPIError) and getattr(exc, "connection_invalidated", False):
            return FastJSONResponse(error_body("database_unavailable", "the database is unavailable"), 503)
        if isinstance(exc, OperationalError | OSError):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
            return FastJSONResponse(error_body("database_unavailable", "the database is unavailable"), 503)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return FastJSONResponse(error_body("internal", "internal error"), 500)
