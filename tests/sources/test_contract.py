"""The contract every registered source keeps, run through its real fetch code against a local server.

Parametrised over `kamiyo.sources.REGISTRY`, so a new source is covered as soon as its file exists;
its recorded response goes in tests/fixtures/sources/<name>/ (see README.md there). Each source:
parses its fixture into valid reports; answers a repeat fetch conditionally (304); and survives an
empty body, a 500, a timeout, malformed content and a 304 — failing cleanly (FetchError/ParseError,
booked as a failed run) or yielding valid reports, never crashing the round or costing another
source its reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.exploits.models import ReportRow
from kamiyo.ingest import validate
from kamiyo.ingest.models import SourceRun, SourceState
from kamiyo.ingest.runner import IngestOptions, fetch_reports
from kamiyo.ingest.scheduler import run_round
from kamiyo.sources import REGISTRY
from kamiyo.sources.base import ParseError, Report
from kamiyo.sources.http import Fetcher, FetchError, FetchPolicy, SourceContext, new_client
from tests.sources.fixture_server import FIXTURES, MODES, FixtureServer, fixture_config, fixture_server

SOURCES = sorted(REGISTRY)
POLICY = FetchPolicy(timeout=0.4, retries=1, backoff=0.01, max_pages=10)
# A "slow" source only has to outlast the timeout (twice: the first attempt and its retry); the healthy
# modes keep the roomier POLICY so a loaded machine does not turn a good answer into a timeout.
SLOW_POLICY = FetchPolicy(timeout=0.1, retries=1, backoff=0.01, max_pages=10)
# In a round the healthy companion shares the policy of the slow source, so it gets a little more.
SLOW_ROUND_POLICY = FetchPolicy(timeout=0.15, retries=1, backoff=0.01, max_pages=10)
DEADLINE = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[FixtureServer]:
    with fixture_server() as running:
        yield running


@pytest.fixture
async def client(server: FixtureServer) -> AsyncIterator[httpx.AsyncClient]:
    server.modes.clear()
    async with new_client() as http:
        yield http


TEST_KEY = "test-key"  # sources that declare `needs_key` get this one


async def _fetch(name: str, server: FixtureServer, client: httpx.AsyncClient, fetcher: Fetcher) -> list[Report]:
    key = TEST_KEY if REGISTRY[name].needs_key else None
    return await fetch_reports(REGISTRY[name], SourceContext(fetcher, server.url(name), key=key))


def companion(name: str) -> str:
    """A healthy source to run beside the one under test."""
    return "rekt" if name != "rekt" else "defillama"


@pytest.mark.parametrize("name", SOURCES)
def test_source_declares_itself_and_has_a_fixture(name: str) -> None:
    source = REGISTRY[name]
    assert source.name == name and name == name.lower() and " " not in name
    assert source.title and source.url.startswith("https://") and source.endpoint.startswith("https://")
    assert source.cadence_seconds >= 300
    assert (FIXTURES / name).is_dir(), f"add tests/fixtures/sources/{name}/ with a recorded response"
    assert "min_reports" in fixture_config(name), f"add tests/fixtures/sources/{name}/fixture.json"


@pytest.mark.parametrize("name", SOURCES)
async def test_source_parses_its_recorded_response_into_valid_reports(
    name: str, server: FixtureServer, client: httpx.AsyncClient
) -> None:
    reports = await _fetch(name, server, client, Fetcher(client, POLICY))
    assert len(reports) >= fixture_config(name)["min_reports"]
    problems = {r.source_ref: p for r in reports if (p := validate.problems(r, name))}
    assert problems == {}
    assert len({r.source_ref for r in reports}) == len(reports), "source_refs must be unique"
    assert all(r.url is None or r.url.startswith(("http://", "https://")) for r in reports)


@pytest.mark.parametrize("name", SOURCES)
async def test_a_repeat_fetch_is_conditional_and_costs_nothing(
    name: str, server: FixtureServer, client: httpx.AsyncClient
) -> None:
    first = Fetcher(client, POLICY)
    await _fetch(name, server, client, first)
    assert first.seen_validators, "the shared HTTP layer remembers ETag / Last-Modified"
    again = Fetcher(client, POLICY, validators=first.seen_validators)
    before = len(server.requests)
    assert await _fetch(name, server, client, again) == []
    assert again.not_modified >= 1
    assert all("if-none-match" in headers for _, _, headers in server.requests[before:])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SOURCES)
async def test_source_fails_cleanly_or_yields_valid_reports(
    name: str, mode: str, server: FixtureServer, client: httpx.AsyncClient
) -> None:
    server.modes[name] = mode
    try:
        reports = await _fetch(name, server, client, Fetcher(client, SLOW_POLICY if mode == "slow" else POLICY))
    except (FetchError, ParseError) as exc:
        assert str(exc)
        if mode == "500":
            assert isinstance(exc, FetchError) and exc.status == 500
        return
    assert mode in ("malformed", "empty", "304"), f"{mode} should have failed"
    assert all(validate.problems(r, name) == [] for r in reports)
    if mode == "304":
        assert reports == []


async def _counts(db: Database, source: str) -> tuple[int, SourceState | None, int]:
    async with db.session() as session:
        reports = (await session.execute(select(func.count()).where(ReportRow.source == source))).scalar_one()
        state = await session.get(SourceState, source)
        runs = (await session.execute(select(func.count()).where(SourceRun.source == source))).scalar_one()
    return reports, state, runs


@pytest.mark.input_matrix
@pytest.mark.parametrize("name", SOURCES)
async def test_a_misbehaving_source_never_costs_the_round_or_other_sources(
    name: str, server: FixtureServer, empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One round per failure mode with a healthy companion: the round completes, the failure is booked,
    the companion's reports are stored and it stays healthy."""
    if REGISTRY[name].needs_key:
        monkeypatch.setenv(str(REGISTRY[name].needs_key), TEST_KEY)
    other = companion(name)
    urls = server.source_urls(name, other)
    db = Database(empty_db_url)
    expected = None
    try:
        for mode in MODES:
            server.modes.clear()
            server.modes[name] = mode
            policy = SLOW_ROUND_POLICY if mode == "slow" else POLICY
            options = IngestOptions(source_urls=urls, policy=policy, deadline=DEADLINE)
            outcomes = await run_round(db, options, [REGISTRY[name], REGISTRY[other]])
            tested, partner = outcomes
            assert partner.status in ("ok", "not_modified"), partner
            assert tested.status in ("ok", "not_modified", "failed"), tested
            stored, partner_state, _ = await _counts(db, other)
            expected = expected or stored
            assert stored == expected >= fixture_config(other)["min_reports"]
            assert partner_state is not None and partner_state.consecutive_failures == 0
            _, state, runs = await _counts(db, name)
            assert state is not None and state.last_run_at is not None
            if tested.failed:
                assert state.last_error and state.consecutive_failures >= 1
            assert runs == MODES.index(mode) + 1
    finally:
        await db.dispose()


async def test_a_slow_source_is_cut_at_its_deadline_while_the_other_finishes(
    server: FixtureServer, empty_db_url: str
) -> None:
    server.modes.clear()
    server.modes["defillama"] = "slow"
    options = IngestOptions(
        source_urls=server.source_urls("defillama", "rekt"),
        policy=FetchPolicy(timeout=30, retries=0),
        deadline=0.5,
    )
    db = Database(empty_db_url)
    try:
        slow, fast = await run_round(db, options, [REGISTRY["defillama"], REGISTRY["rekt"]])
    finally:
        await db.dispose()
    assert slow.failed and "within 0.5 s" in (slow.error or "")
    assert fast.status == "ok" and fast.items >= 8 and fast.latency_ms < slow.latency_ms
