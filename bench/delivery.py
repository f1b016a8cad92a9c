"""Kamiyo delivery benchmark.

Workloads (all traffic to 127.0.0.1; every wait is time-bounded; child processes are always stopped):

1. fan-out: one exploit matching 10,000 webhook endpoints, delivered to a local receiver process, timed
   from just before the ingest transaction commits to the 10,000th request received;
   SQLite with one `kamiyo worker --deliver` process, PostgreSQL with two (target ≤ 5 s and ≤ 3 s).
2. latency: 200 events, one at a time, each matching a single endpoint; ingest-to-receipt p50/p99
   (target p50 ≤ 250 ms, p99 ≤ 1 s). Modes: embedded (worker in the ingesting process, as in
   `kamiyo serve`), SQLite worker process, PostgreSQL worker process.
3. matching: one event against 100,000 subscriptions with mixed filters (target ≤ 10 ms), plus the
   time to load the index of 100,000 rows from SQLite.
4. client: the delivery HTTP client alone (`delivery.http.HttpPool`, as the workers use it) posting
   N signed-size bodies to the local receiver over 50 kept-alive connections; CPU per post in this
   process (request, response parsing, pool), without the database around it.

    .venv/bin/python bench/delivery.py [--endpoints N] [--events N] [--subscriptions N]
        [--posts N] [--skip-postgres | --skip-sqlite] [--only matching,fanout,latency,client]
        [--profile DIR]

Results are printed and written to bench/results/delivery-<timestamp>.json. Exit code 0 when every
target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
SECRET_KEY = "bench-secret-key"


# -- receiver (runs as its own process: `bench/delivery.py --receiver PORT`) --------------------------


def run_receiver(port: int) -> None:
    """Answers 200 to everything and prints one line per request: its monotonic arrival time.

    A bare asyncio protocol on uvloop (HTTP/1.1 keep-alive, Content-Length bodies, which is what the
    delivery client sends): the receiver stands in for customers' servers, which run elsewhere, so it should
    take as little of this machine's two cores as it can (aiohttp's server took ~125 us per request)."""
    import uvloop

    out = sys.stdout
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                at = head.find(b"content-length:")
                length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                out.write(f"R {time.monotonic():.6f}\n")
                self.transport.write(answer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Receiver, "127.0.0.1", port, backlog=4096)
        out.write("READY\n")
        out.flush()
        while True:
            await asyncio.sleep(0.01)
            out.flush()

    uvloop.run(main())


class ReceiverProcess:
    def __init__(self) -> None:
        from tests.support.services import free_port

        self.port = free_port()
        self.arrivals: list[float] = []
        self.changed = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ReceiverProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--receiver", str(self.port), stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.strip() == b"READY", line
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            if line.startswith(b"R "):
                self.arrivals.append(float(line[2:]))
                self.changed.set()

    async def wait_count(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


# -- database set-up ------------------------------------------------------------------------------------


def worker_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(
        KAMIYO_DATABASE_URL=db_url,
        KAMIYO_SECRET_KEY=SECRET_KEY,
        KAMIYO_ALLOW_HTTP_WEBHOOKS="1",
        KAMIYO_OFFLINE="1",
        KAMIYO_SEED="0",
        KAMIYO_LOG_LEVEL="WARNING",
    )
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def workers(db_url: str, count: int) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs = []
    drains: list[asyncio.Task[None]] = []
    try:
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kamiyo.cli", "worker", "--deliver", "--no-ingest",
                env=worker_env(db_url), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            procs.append(proc)
            assert proc.stderr is not None
            # `kamiyo worker` says "running: delivery worker; ..." once its loops have started
            while b"running: delivery worker" not in (line := await asyncio.wait_for(proc.stderr.readline(), 60)):
                if not line:
                    raise RuntimeError(f"worker exited with {await proc.wait()} before it started")
            drains.append(asyncio.create_task(_drain(proc.stderr)))
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in drains:
            task.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading a child's stderr so it never blocks on a full pipe; show warnings."""
    async for line in stream:
        sys.stderr.write("worker: " + line.decode(errors="replace"))


async def prepare(db_url: str, endpoints: int, url: str) -> None:
    """Migrated database, one enterprise user, `endpoints` webhooks at the receiver (filters: any)."""
    from sqlalchemy import insert

    from kamiyo import migrations
    from kamiyo.accounts.models import User
    from kamiyo.db import Database
    from kamiyo.delivery.models import UserWebhook
    from kamiyo.delivery.queue import bump_subscriptions
    from kamiyo.kit.crypto import SecretBox, new_webhook_secret

    await asyncio.to_thread(migrations.upgrade, db_url)
    db = Database(db_url)
    now = datetime.now(UTC)
    secret = SecretBox(SECRET_KEY).encrypt(new_webhook_secret())
    try:
        async with db.session() as session:
            user = User(email="bench@example.com", password_hash="x", tier="enterprise", is_active=True,
                        is_admin=False, created_at=now, updated_at=now)  # fmt: skip
            session.add(user)
            await session.flush()
            rows = [
                {"user_id": user.id, "url": f"{url}/e{i}", "description": "", "filters": {}, "min_amount_usd": None,
                 "enabled": True, "consecutive_failures": 0, "secret_enc": secret, "created_at": now,
                 "updated_at": now}
                for i in range(endpoints)
            ]  # fmt: skip
            for start in range(0, len(rows), 5000):
                await session.execute(insert(UserWebhook), rows[start : start + 5000])
            await bump_subscriptions(session)
    finally:
        await db.dispose()


_serial = iter(range(1, 10**9))


def incident() -> Any:
    from kamiyo.sources.base import Report

    n = next(_serial)
    return Report(
        source="defillama", source_ref=f"bench-{n}-{time.time_ns()}", protocol=f"Benchfi {n}",
        timestamp=datetime.now(UTC) - timedelta(hours=1), chain="ethereum", amount_usd=1e6 + n,
        category="flash_loan", tx_hash="0x" + f"{time.time_ns():064x}"[-64:],
    )  # fmt: skip


INGEST_RETRIES = [0]


async def ingest_one(db: Any) -> float:
    """Store one new recent incident as ingestion does; returns the monotonic time just before commit.

    On SQLite, `store_reports` can fail with "database is locked" when another connection commits
    while it runs (it reads inside its transaction before its first write); it is retried and counted.
    """
    from sqlalchemy.exc import OperationalError

    from kamiyo.ingest.store import store_reports

    report = incident()
    for attempt in range(10):
        try:
            async with db.sessionmaker() as session:
                await store_reports(session, [report], notify_since=datetime.now(UTC) - timedelta(days=7))
                started = time.monotonic()
                await session.commit()
            return started
        except OperationalError:
            INGEST_RETRIES[0] += 1
            await asyncio.sleep(0.01 * (attempt + 1))
    raise RuntimeError("ingest kept failing")


async def count_succeeded(db_url: str) -> int:
    from sqlalchemy import func, select

    from kamiyo.db import Database
    from kamiyo.delivery.models import WebhookDelivery

    db = Database(db_url)
    try:
        async with db.session() as session:
            stmt = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "succeeded")
            return int((await session.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


# -- workloads ------------------------------------------------------------------------------------------


async def fanout(db_url: str, endpoints: int, worker_count: int, profile: Path | None = None) -> dict[str, Any]:
    """`profile`: a folder for one py-spy profile per worker (collapsed stacks), taken during the fan-out."""
    from kamiyo.db import Database

    async with ReceiverProcess() as rx:
        await prepare(db_url, endpoints, rx.url)
        db = Database(db_url)
        try:
            async with workers(db_url, worker_count) as procs:
                spies = await _start_profilers(procs, profile, db_url) if profile else []
                await asyncio.sleep(0.5)
                cpu_before = [cpu_seconds(p.pid) for p in procs]
                assert rx.proc is not None
                rx_cpu_before = cpu_seconds(rx.proc.pid)
                pg_before = await postgres_cpu(db_url)
                started = await ingest_one(db)
                complete = await rx.wait_count(endpoints, 60)
                seconds = (rx.arrivals[-1] if rx.arrivals else time.monotonic()) - started
                await asyncio.sleep(1.0)  # let the last outcomes be recorded
                worker_cpu = [cpu_seconds(p.pid) - before for p, before in zip(procs, cpu_before, strict=True)]
                receiver_cpu = cpu_seconds(rx.proc.pid) - rx_cpu_before
                pg_after = await postgres_cpu(db_url)
                pg_cpu = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items()) if pg_after else None
                await _stop_profilers(spies)
        finally:
            await db.dispose()
        received = len(rx.arrivals)
        arrivals = [t - started for t in rx.arrivals]
    return {
        "endpoints": endpoints,
        "workers": worker_count,
        "received": received,
        "complete": complete,
        "seconds": round(seconds, 3),
        "first_receipt_s": round(arrivals[0], 3) if arrivals else None,
        "half_received_s": round(arrivals[len(arrivals) // 2], 3) if arrivals else None,
        "per_second": round(endpoints / seconds) if seconds > 0 else None,
        "worker_cpu_ms_per_delivery": round(sum(worker_cpu) / endpoints * 1000, 3),
        "worker_cpu_s": [round(c, 2) for c in worker_cpu],
        "receiver_cpu_s": round(receiver_cpu, 2),
        "postgres_cpu_s": round(pg_cpu, 2) if pg_cpu is not None else None,
        "load_average": os.getloadavg()[0],
        "succeeded_rows": await count_succeeded(db_url),
    }


async def postgres_cpu(db_url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend and background process (empty on SQLite)."""
    if not db_url.startswith("postgresql"):
        return {}
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        pids = [r[0] for r in await conn.fetch("SELECT pid FROM pg_stat_activity")]
    finally:
        await conn.close()
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


async def _start_profilers(
    procs: list[asyncio.subprocess.Process], folder: Path, db_url: str
) -> list[asyncio.subprocess.Process]:
    """py-spy (installed into the venv by hand, not a dependency) attached to each worker, 250 samples/s."""
    spy = Path(sys.executable).with_name("py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    spies = []
    for i, proc in enumerate(procs):
        out = folder / f"{backend}-worker{i}.txt"
        spies.append(
            await asyncio.create_subprocess_exec(
                str(spy),
                "record",
                "--pid",
                str(proc.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    await asyncio.sleep(1.0)  # py-spy needs a moment to attach
    return spies


async def _stop_profilers(spies: list[asyncio.subprocess.Process]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        try:
            await asyncio.wait_for(spy.wait(), 20)
        except TimeoutError:
            spy.kill()
            await spy.wait()


async def latency(db_url: str, events: int, mode: str) -> dict[str, Any]:
    """`mode`: embedded (worker in this process) or process (a `kamiyo worker` process)."""
    from kamiyo.config import Settings
    from kamiyo.db import Database
    from kamiyo.delivery.worker import DeliveryWorker

    async with ReceiverProcess() as rx:
        await prepare(db_url, 1, rx.url)
        db = Database(db_url)
        samples: list[float] = []
        try:
            if mode == "embedded":
                settings = Settings(_env_file=None, **worker_env(db_url))  # type: ignore[arg-type]
                context: Any = _embedded(DeliveryWorker(db, settings))
            else:
                context = workers(db_url, 1)
            async with context:
                await asyncio.sleep(0.5)
                for i in range(events):
                    started = await ingest_one(db)
                    if not await rx.wait_count(i + 1, 10):
                        break
                    samples.append(rx.arrivals[i] - started)
                    await asyncio.sleep(0.01)
        finally:
            await db.dispose()
    samples.sort()
    retries, INGEST_RETRIES[0] = INGEST_RETRIES[0], 0
    return {
        "mode": mode,
        "ingest_retries": retries,
        "events": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1) if samples else None,
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 1) if samples else None,
        "max_ms": round(samples[-1] * 1000, 1) if samples else None,
    }


@contextlib.asynccontextmanager
async def _embedded(worker: Any) -> AsyncIterator[None]:
    await worker.start()
    try:
        yield
    finally:
        await worker.stop()


def synthetic_subscriptions(count: int, seed: int = 7) -> list[Any]:
    from kamiyo.delivery.matching import Subscription, Target
    from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

    rng = random.Random(seed)
    chains, categories = list(CHAINS), list(CATEGORIES)
    protocols = [f"protocol {i}" for i in range(5000)]
    subs = []
    for i in range(count):
        subs.append(
            Subscription(
                Target("webhook", i),
                rng.choice([None, None, 1e4, 1e5, 1e6, 1e7, rng.uniform(0, 5e7)]),
                tuple(rng.sample(chains, rng.randint(1, 4))) if rng.random() < 0.6 else (),
                tuple(rng.sample(protocols, rng.randint(1, 3))) if rng.random() < 0.2 else (),
                tuple(rng.sample(categories, rng.randint(1, 3))) if rng.random() < 0.3 else (),
            )
        )
    return subs


async def matching(count: int, tmp: Path) -> dict[str, Any]:
    from sqlalchemy import insert

    from kamiyo import migrations
    from kamiyo.db import Database
    from kamiyo.delivery.dispatch import load_index
    from kamiyo.delivery.matching import SubscriptionIndex
    from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

    subs = synthetic_subscriptions(count)
    started = time.perf_counter()
    index = SubscriptionIndex(subs)
    build_s = time.perf_counter() - started
    rng = random.Random(11)
    times, matched = [], []
    for _ in range(1000):
        exploit = {
            "chain": rng.choice(list(CHAINS)[:8]),
            "category": rng.choice(list(CATEGORIES)),
            "protocol": f"Protocol {rng.randint(0, 5000)}",
            "amount_usd": rng.choice([None, rng.uniform(0, 5e7)]),
        }
        t = time.perf_counter()
        matched.append(len(index.match(exploit)))
        times.append(time.perf_counter() - t)
    times.sort()
    # The same subscriptions as rows: how long a process takes to (re)load its index from SQLite.
    db_url = f"sqlite:///{tmp / 'matching.db'}"
    await asyncio.to_thread(migrations.upgrade, db_url)
    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        async with db.session() as session:
            from kamiyo.accounts.models import User
            from kamiyo.delivery.models import UserWebhook

            user = User(email="m@example.com", password_hash="x", tier="enterprise", is_active=True, is_admin=False,
                        created_at=now, updated_at=now)  # fmt: skip
            session.add(user)
            await session.flush()
            rows = [
                {"user_id": user.id, "url": "https://example.com/", "description": "", "enabled": True,
                 "min_amount_usd": s.min_amount_usd, "consecutive_failures": 0, "secret_enc": "x",
                 "created_at": now, "updated_at": now,
                 "filters": {"min_amount_usd": s.min_amount_usd, "chains": list(s.chains),
                             "protocols": list(s.protocols), "categories": list(s.categories)}}
                for s in subs
            ]  # fmt: skip
            for start in range(0, len(rows), 10000):
                await session.execute(insert(UserWebhook), rows[start : start + 10000])
        async with db.session() as session:
            t = time.perf_counter()
            loaded = await load_index(session, 1)
            load_s = time.perf_counter() - t
    finally:
        await db.dispose()
    return {
        "subscriptions": count,
        "events": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 3),
        "max_ms": round(times[-1] * 1000, 3),
        "median_matches": int(statistics.median(matched)),
        "build_index_s": round(build_s, 3),
        "load_index_from_sqlite_s": round(load_s, 3),
        "loaded": len(loaded),
    }


async def client_cpu(posts: int, concurrency: int = 50) -> dict[str, Any]:
    """CPU of this process per POST through the pool, after a warm-up that opens the connections."""
    from kamiyo.delivery.http import HttpPool
    from kamiyo.kit import ssrf

    body = orjson.dumps({"type": "exploit.created", "data": {"protocol": "Example", "amount_usd": 1.0}}) * 8
    headers = {"content-type": "application/json", "webhook-id": "msg_bench", "webhook-signature": "v1," + "a" * 44}
    async with ReceiverProcess() as rx:
        pool = HttpPool(policy=ssrf.Policy(allow_loopback=True))

        async def lane(count: int) -> None:
            for _ in range(count):
                response = await pool.post(rx.url + "/hook", body, headers, timeout=5, keep=1024)
                assert response.status == 200

        try:
            await asyncio.gather(*(lane(2) for _ in range(concurrency)))
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(lane(posts // concurrency) for _ in range(concurrency)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await pool.close()
    done = posts // concurrency * concurrency
    return {"posts": done, "cpu_us_per_post": round(cpu / done * 1e6, 1), "seconds": round(wall, 3)}


# -- main -----------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "cpus": os.cpu_count()}
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="kamiyo-delivery-bench-") as folder:
        tmp = Path(folder)
        if "matching" in parts:
            results["matching"] = await matching(args.subscriptions, tmp)
            print("matching", results["matching"], flush=True)
        if "client" in parts:
            results["client"] = await client_cpu(args.posts)
            print("client", results["client"], flush=True)
        if "fanout" in parts and not args.skip_sqlite:
            results["fanout_sqlite"] = await fanout(f"sqlite:///{tmp / 'fanout.db'}", args.endpoints, 1, args.profile)
            print("fan-out sqlite", results["fanout_sqlite"], flush=True)
        if "latency" in parts and not args.skip_sqlite:
            for key, mode in (("latency_embedded_sqlite", "embedded"), ("latency_process_sqlite", "process")):
                results[key] = await latency(f"sqlite:///{tmp / (mode + '.db')}", args.events, mode)
                print(key, results[key], flush=True)
        if not args.skip_postgres:
            from tests.support.services import postgres_missing_reason, postgres_server, psql

            reason = postgres_missing_reason()
            if reason:
                results["postgres"] = f"skipped: {reason}"
            else:
                with postgres_server() as admin:
                    for name in ("fanout", "latency"):
                        await asyncio.to_thread(psql, admin, f"CREATE DATABASE bench_{name}")
                    if "fanout" in parts:
                        results["fanout_postgres"] = await fanout(
                            f"{admin}/bench_fanout", args.endpoints, 2, args.profile
                        )
                        print("fan-out postgres", results["fanout_postgres"], flush=True)
                    if "latency" in parts:
                        lat = await latency(f"{admin}/bench_latency", args.events, "process")
                        results["latency_process_postgres"] = lat
                        print("latency process postgres", lat, flush=True)
    return results


def verdict(results: dict[str, Any]) -> list[str]:
    failures = []
    match = results.get("matching")
    if isinstance(match, dict) and match["p50_ms"] > 10:
        failures.append("matching p50 > 10 ms")
    lite = results.get("fanout_sqlite")
    if isinstance(lite, dict) and (not lite["complete"] or lite["seconds"] > 5):
        failures.append("fan-out on SQLite > 5 s")
    pg = results.get("fanout_postgres")
    if isinstance(pg, dict) and (not pg["complete"] or pg["seconds"] > 3):
        failures.append("fan-out on PostgreSQL > 3 s")
    for key in ("latency_embedded_sqlite", "latency_process_sqlite", "latency_process_postgres"):
        lat = results.get(key)
        if isinstance(lat, dict) and (lat["p50_ms"] is None or lat["p50_ms"] > 250 or lat["p99_ms"] > 1000):
            failures.append(f"{key} over p50 250 ms / p99 1 s")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true", help="run fan-out and latency on PostgreSQL only")
    parser.add_argument("--posts", type=int, default=20_000, help="posts of the client part")
    parser.add_argument("--only", default="matching,fanout,latency,client", help="comma list of parts to run")
    parser.add_argument("--profile", type=Path, help="folder for py-spy profiles of the fan-out workers")
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return 0
    results = asyncio.run(run(args))
    results["failures"] = verdict(results)
    out = HERE / "results" / f"delivery-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    print(f"written to {out}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
