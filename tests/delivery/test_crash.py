"""SIGKILL of a real `kamiyo worker --deliver` process mid-way through 1,000 deliveries loses none."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict

from kamiyo.db import Database
from tests.delivery.support import SECRET_KEY, Receiver, add_webhook, ingest, report, succeeded_count, wait_until
from tests.support.users import user_with_key

ENDPOINTS = 1000
CONCURRENCY = 20


def _worker_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(
        KAMIYO_DATABASE_URL=db_url,
        KAMIYO_SECRET_KEY=SECRET_KEY,
        KAMIYO_ALLOW_HTTP_WEBHOOKS="1",
        KAMIYO_OFFLINE="1",
        KAMIYO_SEED="0",
        KAMIYO_LOG_LEVEL="WARNING",
        KAMIYO_WEBHOOK_TIMEOUT="1",
        KAMIYO_DELIVERY_LEASE="2",
        KAMIYO_DELIVERY_CONCURRENCY=str(CONCURRENCY),
        KAMIYO_WEBHOOK_RETRY_SCHEDULE="0.5,0.5,0.5",
    )
    return env


async def _start_worker(db_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kamiyo.cli",
        "worker",
        "--deliver",
        "--no-ingest",
        env=_worker_env(db_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_sigkill_mid_delivery_then_restart_delivers_everything(db_url: str) -> None:
    database = Database(db_url)
    worker: asyncio.subprocess.Process | None = None
    # 20 ms per answer and 20 at a time: about a second of work, so the kill lands in the middle.
    async with Receiver(lambda _r, _n: (200, {}, 0.02)) as rx:
        try:
            user_id, _ = await user_with_key(database, tier="enterprise")
            for i in range(ENDPOINTS):
                await add_webhook(database, user_id, f"{rx.url}/e{i}")
            worker = await _start_worker(db_url)
            await ingest(database, report(protocol="Crashfi"))
            await rx.wait_for(300, timeout=60)
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            before_restart = len(rx.requests)
            assert 300 <= before_restart < ENDPOINTS, before_restart

            worker = await _start_worker(db_url)
            assert await wait_until(lambda: _done(database), timeout=60, step=0.2)
        finally:
            if worker is not None and worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
            await database.dispose()

    by_path: dict[str, list[str]] = defaultdict(list)
    for request in rx.requests:
        by_path[request.path].append(request.headers["webhook-id"])
    assert len(by_path) == ENDPOINTS  # nothing lost
    duplicated = {path: ids for path, ids in by_path.items() if len(ids) > 1}
    # Only attempts in flight at the kill are repeated, and always with the same webhook-id.
    assert len(duplicated) <= 3 * CONCURRENCY, len(duplicated)
    assert all(len(set(ids)) == 1 for ids in duplicated.values())


async def _done(database: Database) -> bool:
    return await succeeded_count(database) == ENDPOINTS
