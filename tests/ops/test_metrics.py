"""`GET /metrics`: request series labelled by route template, the domain series, scrape-time gauges."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.db import Database
from kamiyo.ops import metrics
from tests.ops.helpers import label_values, value
from tests.support.app import make_client, make_settings


async def _scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.mark.reads_seed
async def test_requests_are_counted_by_route_template_never_by_raw_path(client: httpx.AsyncClient) -> None:
    before = await _scrape(client)
    ref = (await client.get("/exploits?page_size=1")).json()["data"][0]["id"]
    assert (await client.get(f"/exploits/{ref}")).status_code == 200
    assert (await client.get(f"/api/v1/exploits/{ref}")).status_code == 200
    assert (await client.get("/exploits/0xdoesnotexist")).status_code == 404
    assert (await client.get("/no/such/path/123")).status_code == 404
    after = await _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    detail = {"method": "GET", "route": "/exploits/{ref}"}
    assert delta("kamiyo_http_requests_total", status="200", **detail) == 1
    assert delta("kamiyo_http_requests_total", status="404", **detail) == 1
    assert delta("kamiyo_http_requests_total", method="GET", route="/api/v1/exploits/{ref}", status="200") == 1
    assert delta("kamiyo_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("kamiyo_http_request_duration_seconds_count", **detail) == 2
    assert delta("kamiyo_http_request_duration_seconds_bucket", le="+Inf", **detail) == 2
    routes = label_values(after, "kamiyo_http_requests_total", "route")
    assert all(r == "unmatched" or str(ref) not in r.split("/") for r in routes), routes
    assert not any("doesnotexist" in r or "123" in r for r in routes), routes


@pytest.mark.reads_seed
async def test_metrics_is_outside_the_api_prefix_and_the_openapi_schema(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/metrics")).status_code == 404
    schema = (await client.get("/openapi.json")).json()
    assert not any("metrics" in path for path in schema["paths"])
    text_body = await _scrape(client)
    for name in (
        "kamiyo_ingest_runs_total",
        "kamiyo_ingest_items_total",
        "kamiyo_source_failures_total",
        "kamiyo_deliveries_total",
        "kamiyo_delivery_latency_seconds",
        "kamiyo_delivery_queue_depth",
        "kamiyo_delivery_oldest_pending_age_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text_body, name


@pytest.mark.reads_seed
async def test_domain_helpers_feed_their_series(client: httpx.AsyncClient) -> None:
    before = await _scrape(client)
    metrics.record_ingest_run("metrics_test_src", "ok", items=7)
    metrics.record_ingest_run("metrics_test_src", "timeout")
    metrics.record_delivery("webhook", "succeeded", 0.4)
    metrics.record_delivery("webhook", "failed")
    after = await _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("kamiyo_ingest_runs_total", source="metrics_test_src", outcome="ok") == 1
    assert delta("kamiyo_ingest_runs_total", source="metrics_test_src", outcome="timeout") == 1
    assert delta("kamiyo_ingest_items_total", source="metrics_test_src") == 7
    assert delta("kamiyo_source_failures_total", source="metrics_test_src") == 1
    assert delta("kamiyo_deliveries_total", channel="webhook", outcome="succeeded") == 1
    assert delta("kamiyo_deliveries_total", channel="webhook", outcome="failed") == 1
    assert delta("kamiyo_delivery_latency_seconds_count", channel="webhook") == 1
    assert delta("kamiyo_delivery_latency_seconds_bucket", channel="webhook", le="0.5") == 1


async def test_queue_gauges_come_from_the_database_at_scrape_time(db_url: str) -> None:
    """A pending-rows probe over a queue table: counted only while the table exists."""
    table = "metrics_probe_queue"
    probe = metrics.pending_rows_probe(table)
    metrics.register_queue_probe(probe)
    database = Database(db_url)
    try:
        async for client in make_client(make_settings(db_url)):
            assert value(await _scrape(client), "kamiyo_database_up") == 1  # no such table yet: skipped quietly
            async with database.session() as session:
                await _make_queue(session, table)
            scraped = await _scrape(client)
            assert value(scraped, "kamiyo_delivery_queue_depth") >= 2
            assert value(scraped, "kamiyo_delivery_oldest_pending_age_seconds") >= 3600
    finally:
        metrics.queue_probes.remove(probe)
        await database.dispose()


async def _make_queue(session: AsyncSession, table: str) -> None:
    await session.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, status TEXT, created_at TIMESTAMP)"))
    rows = [(1, "pending", datetime(2020, 1, 1)), (2, "pending", datetime(2030, 1, 1)), (3, "succeeded", None)]
    for row_id, status, created in rows:
        await session.execute(
            text(f"INSERT INTO {table} VALUES (:id, :status, :created)"),
            {"id": row_id, "status": status, "created": created},
        )


async def test_metrics_answer_while_the_database_is_down(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}")  # a folder: SQLite cannot open it
    async for client in make_client(settings):
        body = await _scrape(client)
        assert value(body, "kamiyo_database_up") == 0
        assert "kamiyo_http_requests_total" in body


@pytest.mark.reads_seed
async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/ping", headers={"X-Request-ID": "edge-7f3a:42"})
    assert given.headers["x-request-id"] == "edge-7f3a:42"
    fresh = [await client.get("/ping") for _ in range(2)]
    ids = {r.headers["x-request-id"] for r in fresh}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    hostile = await client.get("/ping", headers={"X-Request-ID": "x" * 300})
    assert hostile.headers["x-request-id"] != "x" * 300 and len(hostile.headers["x-request-id"]) == 32
    error = await client.get("/exploits?page_size=0")
    assert error.status_code == 422 and len(error.headers["x-request-id"]) == 32
