"""Real loopback receivers and small factories for delivery tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.delivery.filters import SubscriptionFilters
from kamiyo.delivery.models import AlertChannel, UserWebhook, WebhookDelivery
from kamiyo.delivery.queue import bump_subscriptions
from kamiyo.ingest.store import store_reports
from kamiyo.kit.crypto import SecretBox, new_webhook_secret
from kamiyo.sources.base import Report
from tests.support.services import free_port

_refs = itertools.count(1)
SECRET_KEY = "test-server-key"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Reply = tuple[int, dict[str, str], float]  # status, headers, delay seconds
Responder = Callable[[web.Request, int], Reply | Awaitable[Reply]]


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 recording every request; `respond(request, n)` decides each answer."""

    respond: Responder | None = None
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _counts: dict[str, int] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        n = self._counts.get(request.path, 0) + 1
        self._counts[request.path] = n
        self.requests.append(Received(request.path_qs, dict(request.headers), body, time.monotonic()))
        self.arrived.set()
        status, headers, delay = 200, {}, 0.0
        if self.respond is not None:
            reply = self.respond(request, n)
            status, headers, delay = await reply if asyncio.iscoroutine(reply) else reply  # type: ignore[misc]
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "nope")

    async def __aenter__(self) -> Receiver:
        app = web.Application(client_max_size=2**22)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    async def wait_for(self, count: int, *, path: str | None = None, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.on(path) if path else self.requests
            if len(got) >= count or time.monotonic() > deadline:
                return got
            self.arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))


async def add_webhook(
    db: Database, user_id: int, url: str, *, filters: dict[str, Any] | None = None, secret: str | None = None
) -> tuple[int, str]:
    """Straight into the table (the API path is tested separately); returns (id, secret)."""
    secret = secret or new_webhook_secret()
    flt = SubscriptionFilters.model_validate(filters or {})
    now = datetime.now(UTC)
    async with db.session() as session:
        hook = UserWebhook(
            user_id=user_id,
            url=url,
            description="",
            filters=flt.stored(),
            min_amount_usd=flt.min_amount_usd,
            enabled=True,
            consecutive_failures=0,
            secret_enc=SecretBox(SECRET_KEY).encrypt(secret),
            created_at=now,
            updated_at=now,
        )
        session.add(hook)
        await session.flush()
        await bump_subscriptions(session)
        return hook.id, secret


async def add_channel(db: Database, user_id: int, kind: str, target: str, filters: dict[str, Any] | None = None) -> int:
    now = datetime.now(UTC)
    async with db.session() as session:
        channel = AlertChannel(
            user_id=user_id,
            kind=kind,
            target_enc=SecretBox(SECRET_KEY).encrypt(target),
            target_hint=target[:8],
            description="",
            filters=SubscriptionFilters.model_validate(filters or {}).stored(),
            enabled=True,
            consecutive_failures=0,
            confirmed_at=now,  # as an existing, confirmed channel (confirmation is tested through the API)
            created_at=now,
            updated_at=now,
        )
        session.add(channel)
        await session.flush()
        await bump_subscriptions(session)
        return channel.id


def report(**facts: Any) -> Report:
    values: dict[str, Any] = {
        "protocol": f"Testfi {next(_refs)}",
        "timestamp": datetime.now(UTC) - timedelta(hours=1),
        "chain": "ethereum",
        "amount_usd": 2_000_000.0,
        "category": "flash_loan",
        "description": "Price oracle manipulated through a flash loan.",
        "tx_hash": "0x" + f"{next(_refs):064x}",
    }
    values.update(facts)
    return Report(source="defillama", source_ref=f"ref-{next(_refs)}-{time.monotonic_ns()}", **values)


async def ingest(db: Database, *reports: Report, notify: bool = True) -> list[int]:
    """Store reports as ingestion does (events for recent new incidents); returns new exploit ids.

    On SQLite `store_reports` reads inside its transaction before its first write, so a worker's commit
    in between makes it fail with "database is locked" (reported to the ingest owner); retried here so
    these delivery tests do not flake on it.
    """
    from sqlalchemy.exc import OperationalError

    since = datetime.now(UTC) - timedelta(days=7) if notify else None
    for attempt in range(5):
        try:
            async with db.session() as session:
                result = await store_reports(session, list(reports), notify_since=since)
                return result.created
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def deliveries(db: Database, webhook_id: int) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.execute(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id).order_by(WebhookDelivery.id)
        )
        return list(rows.scalars())


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(step)
    return await check()


async def succeeded_count(db: Database) -> int:
    """Delivery rows recorded as succeeded."""
    async with db.session() as session:
        stmt = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "succeeded")
        return int((await session.execute(stmt)).scalar_one())


def delivery_settings(db_url: str, **env: Any) -> Any:
    """Settings for delivery tests: loopback http allowed, a schedule in fractions of a second."""
    from tests.support.app import make_settings

    values: dict[str, Any] = {
        "KAMIYO_SECRET_KEY": SECRET_KEY,
        "KAMIYO_ALLOW_HTTP_WEBHOOKS": True,
        "KAMIYO_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.3",
        "KAMIYO_RATE_LIMITS": "off",
        "KAMIYO_DELIVERY_POLL": 1.0,
    }
    values.update(env)
    return make_settings(db_url, **values)


@asynccontextmanager
async def running_worker(db: Database, settings: Any, **kwargs: Any) -> AsyncIterator[Any]:
    from kamiyo.delivery.worker import DeliveryWorker

    worker = DeliveryWorker(db, settings, **kwargs)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
