"""The price job against a loopback price API serving recorded answers (tests/fixtures/enrich/prices), on
SQLite and PostgreSQL: the bundled token losses priced at their incident day, the cache, offline, failures."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kamiyo.cli import app
from kamiyo.config import Settings, get_settings
from kamiyo.db import Database
from kamiyo.enrich.prices import price_pending
from kamiyo.exploits.evidence_models import PriceQuote
from kamiyo.exploits.models import DailyChainStat, Exploit
from kamiyo.ingest.token_amounts import coins_to_ask, priceable, token_amounts
from kamiyo.sources.http import FetchPolicy
from tests.enrich.conftest import ANSWERS, PriceApi
from tests.support.app import make_settings

QUICK = FetchPolicy(timeout=5.0, retries=0, backoff=0.0)


def reference(coin: str, day: date) -> float | None:
    noon = str(int(datetime.combine(day, time(12), UTC).timestamp()))
    entry = ANSWERS.get(noon, {"coins": {}})["coins"].get(coin)
    return None if entry is None else float(entry["price"])


def online(db_url: str, base: str) -> Settings:
    return make_settings(db_url, KAMIYO_OFFLINE=False, KAMIYO_SOURCE_URLS=json.dumps({"prices": base}))


async def run(database: Database, settings: Settings, **kwargs: Any) -> Any:
    return await price_pending(database, settings, interval=0, policy=QUICK, max_requests=500, **kwargs)


async def records(database: Database) -> list[Any]:
    async with database.session() as session:
        rows = await session.execute(
            select(
                Exploit.id, Exploit.amount_text, Exploit.amount_usd, Exploit.amount_status, Exploit.pricing,
                Exploit.timestamp, Exploit.loss_kind, Exploit.is_test,
            )
        )  # fmt: skip
        return list(rows)


async def headline_loss(database: Database) -> float:
    async with database.session() as session:
        return float((await session.execute(select(func.sum(DailyChainStat.loss_usd)))).scalar_one() or 0.0)


async def test_bundled_token_losses_are_priced_at_the_incident_day(
    db_url: str, database: Database, price_api: tuple[str, PriceApi]
) -> None:
    base, api = price_api
    before = {r.id: r for r in await records(database)}
    loss_before = await headline_loss(database)
    token = {i for i, r in before.items() if r.amount_status == "unpriced" and token_amounts(r.amount_text)}
    known = {i for i in token if priceable(token_amounts(before[i].amount_text))}
    recorded = {  # the records whose every coin has a recorded answer for its incident day
        i for i in known
        if all(reference(c, before[i].timestamp.date()) for c in coins_to_ask(token_amounts(before[i].amount_text)))
    }  # fmt: skip

    outcome = await run(database, online(db_url, base))

    after = {r.id: r for r in await records(database)}
    priced = {i for i, r in after.items() if r.amount_status == "priced"}
    assert priced <= known and priced == recorded
    assert len(token) == 162 and len(known) == 152 and len(priced) == 145
    assert len(priced) >= 0.95 * len(known)  # 95.4 %: the rest have no recorded price of their day
    for i in priced:
        row = after[i]
        day = row.timestamp.date()
        assert row.pricing["source"] == "defillama-coins" and row.pricing["day"] == day.isoformat()
        expected = sum(
            a.amount * (1.0 if a.coin == "usd" else reference(a.coin or "", day) or 0.0)
            for a in token_amounts(row.amount_text) or ()
        )
        assert row.amount_usd == pytest.approx(expected, rel=0.05)
        assert all(line["price_at"] for line in row.pricing["amounts"] if line["coin"] != "usd")
    unchanged = [i for i in before if i not in priced]
    assert all(after[i].amount_usd == before[i].amount_usd for i in unchanged)  # a stated USD is never replaced
    assert all(after[i].amount_status == before[i].amount_status for i in unchanged)
    lix = next(i for i, r in before.items() if r.amount_text and "LIX" in r.amount_text)
    assert after[lix].amount_status == "unpriced" and after[lix].amount_usd is None  # an unknown token

    days = {stamp for stamp, _, _ in api.asked}
    assert len(api.asked) == len(days) == outcome.requests  # one request per day, every coin of that day in it
    assert all(width == "12h" and stamp % 86_400 == 43_200 for stamp, _, width in api.asked)
    assert outcome.repriced == len(priced) and outcome.failed == 0
    async with database.session() as session:
        cached = (await session.execute(select(func.count()).select_from(PriceQuote))).scalar_one()
        missing = (await session.execute(select(func.count()).where(PriceQuote.price_usd.is_(None)))).scalar_one()
    assert cached == outcome.quotes + outcome.missing and missing == outcome.missing > 0
    counted = [after[i].amount_usd for i in priced if after[i].loss_kind == "realised" and not after[i].is_test]
    assert await headline_loss(database) == pytest.approx(loss_before + sum(counted), rel=1e-9)  # totals count them

    again = await run(database, online(db_url, base))  # every answer is cached, a missing price too
    assert again.requests == 0 and len(api.asked) == outcome.requests


async def test_offline_nothing_is_asked_and_nothing_priced(
    db_url: str, database: Database, price_api: tuple[str, PriceApi]
) -> None:
    base, api = price_api
    offline = make_settings(db_url, KAMIYO_SOURCE_URLS=json.dumps({"prices": base}))
    outcome = await run(database, offline)
    assert outcome.disabled == "KAMIYO_OFFLINE is set" and api.asked == []
    assert not any(r.amount_status == "priced" for r in await records(database))


@pytest.mark.parametrize("mode", ["500", "garbage"])
async def test_a_failing_price_api_is_asked_again_later_and_never_breaks_the_job(
    db_url: str, database: Database, price_api: tuple[str, PriceApi], mode: str
) -> None:
    base, api = price_api
    api.mode = mode
    failed = await run(database, online(db_url, base))
    assert failed.failed == failed.requests == 3 and failed.quotes == 0  # three in a row end the round
    assert all(base not in error for error in failed.errors) and failed.errors[0].endswith(
        "HTTP 500" if mode == "500" else "the answer is not JSON"
    )
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(PriceQuote))).scalar_one() == 0
    assert not any(r.amount_status == "priced" for r in await records(database))
    api.mode = "ok"
    later = await run(database, online(db_url, base))
    assert later.failed == 0 and later.repriced > 100


async def test_the_round_is_bounded_and_the_rest_waits_for_the_next(
    db_url: str, database: Database, price_api: tuple[str, PriceApi]
) -> None:
    base, api = price_api
    first = await price_pending(database, online(db_url, base), interval=0, policy=QUICK, max_requests=5)
    assert first.requests == len(api.asked) == 5 and first.pending > 0
    asked = {stamp for stamp, _, _ in api.asked}
    await price_pending(database, online(db_url, base), interval=0, policy=QUICK, max_requests=5)
    assert len(api.asked) == 10 and not asked & {stamp for stamp, _, _ in api.asked[5:]}


def test_the_prices_command_runs_a_round_or_says_it_is_off(
    db_url: str, price_api: tuple[str, PriceApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, api = price_api
    for name, value in {"KAMIYO_DATABASE_URL": db_url, "KAMIYO_SEED": "0", "KAMIYO_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    off = CliRunner().invoke(app, ["prices"])
    assert off.exit_code == 0 and "pricing is off" in off.output and api.asked == []
    monkeypatch.setenv("KAMIYO_OFFLINE", "0")
    monkeypatch.setenv("KAMIYO_SOURCE_URLS", json.dumps({"prices": base}))
    get_settings.cache_clear()
    try:
        one = CliRunner().invoke(app, ["prices", "--requests", "2"])
    finally:
        get_settings.cache_clear()
    assert one.exit_code == 0 and "2 requests (0 failed)" in one.output and len(api.asked) == 2
