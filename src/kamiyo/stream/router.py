"""`GET /api/v1/stream`: Server-Sent Events, one `exploit.created` per new exploit (pro tier and up)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from kamiyo.accounts.deps import require_feature
from kamiyo.api_deps import SessionDep, get_database
from kamiyo.exploits.router import FiltersDep
from kamiyo.kit.jsonresp import dumps
from kamiyo.stream.hub import StreamHub, Subscriber

router = APIRouter(tags=["stream"])


def get_hub(request: Request) -> StreamHub:
    """The process's hub, made on first use (no await in between: no race)."""
    hub: StreamHub | None = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        hub = request.app.state.stream_hub = StreamHub(get_database(request))
    return hub


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        return None
    return int(value.strip())


async def _events(request: Request, hub: StreamHub, subscriber: Subscriber, heartbeat: float) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 3000\n: connected\n\n"
        while not subscriber.closed or not subscriber.queue.empty():
            try:
                item = await asyncio.wait_for(subscriber.queue.get(), heartbeat)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": heartbeat\n\n"
                continue
            if item is None:
                return
            event_id, exploit = item
            yield b"id: %d\nevent: exploit.created\ndata: %s\n\n" % (event_id, dumps(exploit))
    finally:
        hub.unsubscribe(subscriber)


@router.get(
    "/api/v1/stream",
    dependencies=[Depends(require_feature("live_stream"))],
    summary="Live stream of new exploits (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    session: SessionDep,
    filters: FiltersDep,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    """One `event: exploit.created` (with `id:` and the exploit as `data:`) per new exploit matching the same
    filters as `GET /exploits`; a `: heartbeat` comment every 15 s. Reconnecting with `Last-Event-ID` replays
    what was missed (up to 1,000 events)."""
    await session.close()  # hold no database connection for the life of the stream
    hub = get_hub(request)
    subscriber = await hub.subscribe(filters, _last_event_id(last_event_id))
    heartbeat = request.app.state.settings.stream_heartbeat
    return StreamingResponse(
        _events(request, hub, subscriber, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
