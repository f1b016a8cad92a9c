"""`GET /api/v1/stream`: Server-Sent Events, one `exploit.created` per new exploit (pro tier and up)."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, cast

import anyio
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from kamiyo.accounts.deps import Principal, PrincipalDep, RateLimited, get_limiter, require_feature
from kamiyo.api_deps import SessionDep
from kamiyo.app_state import app_state
from kamiyo.exploits.router import FiltersDep
from kamiyo.kit.jsonresp import dumps
from kamiyo.kit.ratelimit import LimitStore
from kamiyo.stream.hub import StreamHub, Subscriber

router = APIRouter(tags=["stream"])
LEASE_HEARTBEATS = 3  # a stream's place lapses after this many heartbeats without renewal (a dead process)


def get_hub(request: Request) -> StreamHub:
    """The process's hub, made on first use (no await in between: no race)."""
    state = app_state(request)
    if state.stream_hub is None:
        state.stream_hub = StreamHub(state.db)
    return cast(StreamHub, state.stream_hub)  # only this function stores one


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        return None
    return int(value.strip())


@dataclass(frozen=True, slots=True)
class Lease:
    """This connection's place among its account's live streams (see `LimitStore.lease`)."""

    store: LimitStore
    key: str
    holder: str
    ttl: float

    async def renew(self) -> None:
        await self.store.renew(self.key, self.holder, self.ttl)

    async def release(self) -> None:
        await self.store.release(self.key, self.holder)


async def take_lease(request: Request, principal: Principal) -> Lease:
    """One of the account's `KAMIYO_STREAM_MAX_PER_USER` stream places, or 429 when all are held."""
    settings = app_state(request).settings
    cap, ttl = settings.stream_max_per_user, LEASE_HEARTBEATS * settings.stream_heartbeat
    lease = Lease(get_limiter(request).store, f"stream/{principal.user_id}", secrets.token_hex(12), ttl)
    if not await lease.store.lease(lease.key, lease.holder, cap, ttl):
        raise RateLimited(
            f"at most {cap} live streams at once per account; close one to open another",
            details={"limit": cap},
            headers={"Retry-After": str(max(1, math.ceil(settings.stream_heartbeat)))},
        )
    return lease


async def _events(
    request: Request, hub: StreamHub, subscriber: Subscriber, heartbeat: float, lease: Lease
) -> AsyncIterator[bytes]:
    renewed = time.monotonic()
    try:
        yield b"retry: 3000\n: connected\n\n"
        while not subscriber.closed or not subscriber.queue.empty():
            if time.monotonic() - renewed >= heartbeat:
                await lease.renew()
                renewed = time.monotonic()
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
        with anyio.CancelScope(shield=True):  # also when the stream ends by cancellation (a disconnect)
            await lease.release()


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
    principal: PrincipalDep,
    filters: FiltersDep,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    """One `event: exploit.created` (with `id:` and the exploit as `data:`) per new exploit matching the same
    filters as `GET /exploits`; a `: heartbeat` comment every 15 s. Reconnecting with `Last-Event-ID` replays
    what was missed (up to 1,000 events). An account holds at most `KAMIYO_STREAM_MAX_PER_USER` (default 5)
    streams at once; one more answers 429."""
    await session.close()  # hold no database connection for the life of the stream
    lease = await take_lease(request, principal)
    hub = get_hub(request)
    try:
        subscriber = await hub.subscribe(filters, _last_event_id(last_event_id))
    except BaseException:
        await lease.release()
        raise
    heartbeat = app_state(request).settings.stream_heartbeat
    return StreamingResponse(
        _events(request, hub, subscriber, heartbeat, lease),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
