"""The scale-out topology for real: two `kamiyo serve --no-workers` and two `kamiyo worker` processes over one
PostgreSQL database and one Redis, every source pointed at recorded responses on loopback.

Shown here: rate limits and quotas are shared by the API processes; each delivery is made once although two
workers race for it; each source runs on one leader at a time; killing a worker or an API process with SIGKILL
loses nothing. The tests share one topology and run in file order (the kills come last).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.delivery.models import UserWebhook
from kamiyo.sources import REGISTRY
from tests.delivery.support import SECRET_KEY, add_webhook, ingest, report
from tests.ops.helpers import samples
from tests.sources.fixture_server import FixtureServer, fixture_server
from tests.support.databases import fresh_postgres
from tests.support.services import RedisServer, http_server, redis_server
from tests.support.topology import Topology, environment, scale_out
from tests.support.users import user_with_key

ANON_PER_DAY = 12
WORKER_CONCURRENCY = 10
LEASE_SECONDS = 3


@dataclass
class WebhookReceiver:
    """A threaded HTTP receiver on loopback: records (path, webhook-id) and answers 200 after `delay` s."""

    delay: float = 0.0
    received: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def paths(self, prefix: str) -> Counter[str]:
        """Requests per path under `prefix` (each test's event also reaches earlier tests' endpoints)."""
        with self.lock:
            return Counter(path for path, _ in self.received if path.startswith(prefix))

    def reset(self, delay: float) -> None:
        with self.lock:
            self.received.clear()
            self.delay = delay

    def wait_for(self, prefix: str, count: int, timeout: float) -> int:
        """Block until `count` distinct paths under `prefix` were hit (or the timeout); how many were."""
        deadline = time.monotonic() + timeout
        while len(self.paths(prefix)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.paths(prefix))


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.received.append((self.path, self.headers.get("webhook-id", "")))
            if state.delay:
                time.sleep(state.delay)
            with suppress(OSError):  # the sender may have been killed meanwhile
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

    with http_server(Handler) as url:
        state.url = url
        yield state


@dataclass
class Stack:
    topology: Topology
    database_url: str
    redis: RedisServer
    sources: FixtureServer
    receiver: WebhookReceiver


@pytest.fixture(scope="module")
def stack(postgres_admin: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database_url = fresh_postgres(postgres_admin, postgres_template)
    logs = tmp_path_factory.mktemp("topology")
    with redis_server() as redis, fixture_server() as sources, webhook_receiver() as receiver:
        env = environment(
            database_url,
            redis.url,
            KAMIYO_SECRET_KEY=SECRET_KEY,
            KAMIYO_ANON_RATE_LIMIT=f"{ANON_PER_DAY}/day",
            KAMIYO_SOURCE_URLS=json.dumps(  # every fetch stays on loopback, label feeds included
                {
                    **sources.source_urls(*REGISTRY),
                    "ofac": f"{sources.base_url}/labels/sdn.csv",
                    "scamsniffer": f"{sources.base_url}/labels/all.json",
                }
            ),
            KAMIYO_ALLOW_HTTP_WEBHOOKS="1",
            KAMIYO_WEBHOOK_TIMEOUT="2",
            KAMIYO_DELIVERY_LEASE=str(LEASE_SECONDS),
            KAMIYO_DELIVERY_POLL="0.5",
            KAMIYO_DELIVERY_CONCURRENCY=str(WORKER_CONCURRENCY),
            KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.5,0.5,0.5",
            KAMIYO_RESPONSE_CACHE_SECONDS="0.2",
        )
        with scale_out(env, logs) as topology:
            yield Stack(topology, database_url, redis, sources, receiver)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _with_db(database_url: str, work: Any) -> Any:
    db = Database(database_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


async def test_anonymous_limit_and_keyed_quota_are_shared_by_both_api_processes(stack: Stack) -> None:
    a, b = stack.topology.api_urls
    async with httpx.AsyncClient(timeout=10) as http:
        remaining = []
        for n in range(ANON_PER_DAY):
            r = await http.get(f"{(a, b)[n % 2]}/exploits?page_size=1")
            assert r.status_code == 200, r.text
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert remaining == list(range(ANON_PER_DAY - 1, -1, -1))  # one count, whichever process answers
        for url in (a, b):
            refused = await http.get(f"{url}/exploits?page_size=1")
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"

        _, key = await _with_db(stack.database_url, lambda db: user_with_key(db, tier="free"))
        seen = [
            int((await http.get(f"{url}/api/v1/me", headers=bearer(key))).headers["x-ratelimit-remaining"])
            for url in (a, b, a, b)
        ]
        assert seen == [99, 98, 97, 96]  # the free tier's 100 a day, counted once in Redis


async def test_each_source_runs_on_one_leader_at_a_time(stack: Stack) -> None:
    # Keyed sources are off without their keys; the bundled seed counts as defihacklabs' run (due in 6 h).
    public = sorted(name for name, source in REGISTRY.items() if not source.needs_key and name != "defihacklabs")
    workers = stack.topology.workers

    def finished_runs() -> dict[str, Counter[str]]:
        runs: dict[str, Counter[str]] = defaultdict(Counter)
        for worker in workers:
            for (name, labels), value in samples(stack.topology.metrics(worker)).items():
                if name == "kamiyo_ingest_runs_total" and value:
                    found = dict(labels)
                    runs[found["source"]][found["outcome"]] += int(value)
        return runs

    deadline = time.monotonic() + 90  # first runs start within 10 s of each worker's start
    runs = finished_runs()
    while time.monotonic() < deadline and not all(sum(runs[n].values()) >= 2 for n in public):
        await asyncio.sleep(0.5)
        runs = finished_runs()
    assert all(sum(runs[n].values()) >= 2 for n in public), runs  # both workers have had their go at each
    for name in public:
        led = sum(count for outcome, count in runs[name].items() if outcome != "skipped")
        assert led == 1, (name, runs[name])  # one worker fetched; the other skipped it
    fetched = {name for name in public if stack.sources.hits(name)}
    assert fetched == set(public)


async def _deliver_to(stack: Stack, endpoints: int, prefix: str, delay: float) -> None:
    """`endpoints` subscriptions (50 per enterprise user at most) and one new exploit that matches them all."""
    stack.receiver.reset(delay)

    async def work(db: Database) -> None:
        for start in range(0, endpoints, 50):
            user_id, _ = await user_with_key(db, tier="enterprise")
            for i in range(start, min(start + 50, endpoints)):
                await add_webhook(db, user_id, f"{stack.receiver.url}/{prefix}{i}")
        await ingest(db, report(protocol=f"Topology {prefix}"))

    await _with_db(stack.database_url, work)


def _delivered_count(stack: Stack, worker_index: int) -> float:
    labels = frozenset({("channel", "webhook"), ("outcome", "succeeded")})
    return samples(stack.topology.metrics(stack.topology.workers[worker_index])).get(
        ("kamiyo_deliveries_total", labels), 0.0
    )


async def test_every_delivery_is_made_once_across_two_workers(stack: Stack) -> None:
    endpoints = 400
    await _deliver_to(stack, endpoints, "once", delay=0.01)
    assert stack.receiver.wait_for("/once", endpoints, timeout=90) == endpoints
    await asyncio.sleep(LEASE_SECONDS + 1)  # a second claim of any row would have been sent by now
    paths = stack.receiver.paths("/once")
    assert len(paths) == endpoints and set(paths.values()) == {1}
    assert _delivered_count(stack, 0) > 0 and _delivered_count(stack, 1) > 0  # both workers took part


async def test_killing_an_api_process_loses_no_write_and_no_count(stack: Stack) -> None:
    """Writes go to both APIs (a load balancer's view); one dies mid-way; its share fails over to the other."""
    a, b = stack.topology.api_urls
    keys = [(await _with_db(stack.database_url, lambda db: user_with_key(db, tier="enterprise")))[1] for _ in range(4)]
    created: dict[str, set[int]] = defaultdict(set)
    failovers = 0
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(32):
            key = keys[i % 4]
            if i == 12:
                stack.topology.kill(stack.topology.apis[0])
            body = {"url": f"{stack.receiver.url}/api-kill/{i}", "description": f"hook {i}"}
            try:
                r = await http.post(f"{(a, b)[i % 2]}/api/v1/user-webhooks", json=body, headers=bearer(key))
            except httpx.TransportError:  # the dead process: retry on the live one, as a balancer would
                failovers += 1
                r = await http.post(f"{b}/api/v1/user-webhooks", json=body, headers=bearer(key))
            assert r.status_code == 201, r.text
            created[key].add(r.json()["id"])
        assert failovers == 10  # every request meant for the killed process from i = 12 on
        for key in keys:
            listed = await http.get(f"{b}/api/v1/user-webhooks", headers=bearer(key))
            assert {hook["id"] for hook in listed.json()["data"]} == created[key]
            me = await http.get(f"{b}/api/v1/me", headers=bearer(key))
            # 8 creations + 1 list + this call, counted in Redis whichever process answered (or died)
            assert int(me.headers["x-ratelimit-remaining"]) == 1_000_000 - 10

    async def stored(db: Database) -> int:
        async with db.session() as session:
            rows = await session.execute(select(UserWebhook.id).where(UserWebhook.url.like("%/api-kill/%")))
            return len(rows.all())

    assert await _with_db(stack.database_url, stored) == 32


async def test_killing_a_worker_mid_delivery_loses_nothing(stack: Stack) -> None:
    endpoints = 1000
    await _deliver_to(stack, endpoints, "kill", delay=0.05)
    assert stack.receiver.wait_for("/kill", 300, timeout=90) >= 300
    stack.topology.kill(stack.topology.workers[0])
    assert len(stack.receiver.paths("/kill")) < endpoints, "the kill came too late to test anything"
    # The survivor finishes its share, then the dead worker's leased rows once their lease ends.
    assert stack.receiver.wait_for("/kill", endpoints, timeout=120) == endpoints
    await asyncio.sleep(LEASE_SECONDS + 1)
    by_path: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    with stack.receiver.lock:
        for path, webhook_id in stack.receiver.received:
            if not path.startswith("/kill"):
                continue
            by_path[path].add(webhook_id)
            counts[path] += 1
    assert len(by_path) == endpoints  # nothing lost
    assert all(len(ids) == 1 for ids in by_path.values())  # a repeat is the same message (same webhook-id)
    repeated = [path for path, n in counts.items() if n > 1]
    assert len(repeated) <= 2 * WORKER_CONCURRENCY  # only sends in flight at the kill are repeated
