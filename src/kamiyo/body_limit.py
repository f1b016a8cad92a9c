"""A cap on request bodies (KAMIYO_MAX_BODY_BYTES), enforced before they are read.

A declared `Content-Length` over the cap is answered 413 at once, without reading a byte and without
calling the app. A body without one (chunked) is counted as the app pulls it: the chunk that crosses the
cap is refused, nothing after it is pulled, and whatever the app makes of that (FastAPI turns a failed body
read into a 400) is replaced by the 413. The answer is the usual error: JSON on the API, HTML on pages.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kamiyo.errors import KamiyoError, error_response

CODE = "payload_too_large"


class BodyTooLarge(KamiyoError):
    status = 413
    code = CODE


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"request body over the {self.max_bytes:,} byte limit"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(Request(scope), 413, CODE, self._message(), {"limit": self.max_bytes})
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        over = answered = refused = False

        async def counted_receive() -> Message:
            nonlocal received, over
            if over:  # the app asks again after the refusal: it gets no more of the body
                raise BodyTooLarge(self._message())
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise BodyTooLarge(self._message())
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered, refused
            if refused:
                return  # the rest of the app's own answer to a body it could not read
            if message["type"] == "http.response.start":
                if over and not answered:
                    answered = refused = True
                    await self._refuse(scope, receive, send)
                    return
                answered = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over or (answered and not refused):
                raise
            if not answered:
                await self._refuse(scope, receive, send)


def install_body_limit(app: FastAPI, max_bytes: int) -> None:
    """Inside CORS (so a 413 carries its headers), outside the access layer and every route."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
