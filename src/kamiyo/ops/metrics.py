"""Every Prometheus series Kamiyo exports (CONTRACT §10), the helpers that feed them, and `/metrics`.

Other domains only call the helpers: `record_ingest_run(source, outcome, items)` from the ingest
scheduler, `record_delivery(channel, outcome, seconds)` from the delivery worker, and
`register_queue_probe(probe)` to contribute the delivery queue's depth and oldest pending age, which
are read from the database at scrape time (nothing important lives only in memory).

Multi-process: when `PROMETHEUS_MULTIPROC_DIR` is set before start-up (e.g. with
`kamiyo serve --workers N`), prometheus_client keeps each process's values in that folder and a
scrape of any worker aggregates them all; otherwise every process exports its own values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
# `_created` series double the output and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Outcomes of an ingest run that are not failures of the source; anything else also counts in
# kamiyo_source_failures_total.
INGEST_OK_OUTCOMES = frozenset({"ok", "success", "unchanged", "not_modified", "skipped", "disabled"})

HTTP_REQUESTS = Counter(
    "kamiyo_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "kamiyo_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
INGEST_RUNS = Counter("kamiyo_ingest_runs_total", "Ingest runs per source, by outcome.", ["source", "outcome"])
INGEST_ITEMS = Counter("kamiyo_ingest_items_total", "Reports fetched and parsed per source.", ["source"])
SOURCE_FAILURES = Counter("kamiyo_source_failures_total", "Failed ingest runs per source.", ["source"])
DELIVERIES = Counter(
    "kamiyo_deliveries_total",
    "Delivery attempts (webhooks, chat, e-mail), by channel and outcome.",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "kamiyo_delivery_latency_seconds",
    "Time from an event being stored to its successful delivery, by channel.",
    ["channel"],
    buckets=DELIVERY_BUCKETS,
)


def record_ingest_run(source: str, outcome: str, items: int = 0) -> None:
    """Count one ingest run of `source`; outcomes outside INGEST_OK_OUTCOMES also count as failures."""
    INGEST_RUNS.labels(source, outcome).inc()
    if items:
        INGEST_ITEMS.labels(source).inc(items)
    if outcome not in INGEST_OK_OUTCOMES:
        SOURCE_FAILURES.labels(source).inc()


def record_delivery(channel: str, outcome: str, seconds: float | None = None) -> None:
    """Count one delivery attempt; `seconds` (event stored → delivered) is observed when given."""
    DELIVERIES.labels(channel, outcome).inc()
    if seconds is not None:
        DELIVERY_LATENCY.labels(channel).observe(max(seconds, 0.0))


# --- delivery queue gauges, read from the database at scrape time ---------------------------------


@dataclass(frozen=True)
class QueueSample:
    depth: int
    oldest_pending_age_seconds: float


QueueProbe = Callable[[AsyncSession], Awaitable[QueueSample | None]]
queue_probes: list[QueueProbe] = []


def register_queue_probe(probe: QueueProbe) -> None:
    """Add a scrape-time probe of a delivery queue; depths are summed, ages maximised over probes."""
    if probe not in queue_probes:
        queue_probes.append(probe)


def pending_rows_probe(
    table: str, *, status_column: str = "status", pending: str = "pending", created_column: str = "created_at"
) -> QueueProbe:
    """A probe counting `table` rows whose status is pending; answers None while the table does not exist."""

    async def probe(session: AsyncSession) -> QueueSample | None:
        conn = await session.connection()
        if not await conn.run_sync(lambda sync: inspect(sync).has_table(table)):
            return None
        row = (
            await session.execute(
                text(f"SELECT count(*), min({created_column}) FROM {table} WHERE {status_column} = :pending"),
                {"pending": pending},
            )
        ).one()
        return QueueSample(int(row[0]), _age_seconds(row[1]))

    probe.__name__ = f"pending_rows_probe_{table}"
    return probe


def _age_seconds(oldest: Any) -> float:
    from datetime import datetime

    from kamiyo.kit.timeutil import as_utc, utcnow

    if oldest is None:
        return 0.0
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    return max((utcnow() - as_utc(oldest)).total_seconds(), 0.0)


register_queue_probe(pending_rows_probe("webhook_deliveries"))
register_queue_probe(pending_rows_probe("alerts_sent"))


async def sample_queues(session: AsyncSession) -> QueueSample:
    """Sum of every probe's queue; raises when the database cannot be reached at all."""
    await session.execute(text("SELECT 1"))
    depth, age = 0, 0.0
    for probe in list(queue_probes):
        try:
            sample = await probe(session)
        except Exception as exc:  # one broken probe must not hide the other series
            log.warning("metrics queue probe %s failed: %s", getattr(probe, "__name__", probe), type(exc).__name__)
            await session.rollback()
            continue
        if sample is not None:
            depth += sample.depth
            age = max(age, sample.oldest_pending_age_seconds)
    return QueueSample(depth, age)


class _Snapshot(Collector):
    """Gauges computed just before this scrape."""

    def __init__(self, queue: QueueSample | None) -> None:
        self.queue = queue

    def collect(self) -> Any:
        up = GaugeMetricFamily("kamiyo_database_up", "Whether this scrape could query the database.")
        up.add_metric([], 0.0 if self.queue is None else 1.0)
        yield up
        if self.queue is None:
            return
        yield GaugeMetricFamily(
            "kamiyo_delivery_queue_depth", "Deliveries waiting to be sent (all channels).", value=self.queue.depth
        )
        yield GaugeMetricFamily(
            "kamiyo_delivery_oldest_pending_age_seconds",
            "Age of the oldest pending delivery (0 when none).",
            value=self.queue.oldest_pending_age_seconds,
        )


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(queue: QueueSample | None) -> bytes:
    """The exposition text: process-wide series (aggregated across workers in multi-process mode) + snapshot."""
    if multiprocess_dir():
        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)  # type: ignore[no-untyped-call]
    else:
        base = REGISTRY
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(queue))
    return generate_latest(base) + generate_latest(snapshot)


CONTENT_TYPE = CONTENT_TYPE_LATEST


def prepare_multiprocess_dir() -> None:
    """Empty the multi-process folder before workers start, as prometheus_client requires."""
    path = multiprocess_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def start_worker_metrics_server(address: str) -> None:
    """`kamiyo worker` has no HTTP server of its own: expose its series (ingest runs, deliveries) on
    `host:port` (KAMIYO_WORKER_METRICS) for Prometheus to scrape beside the API's `/metrics`."""
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    registry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", host or "127.0.0.1", port)
