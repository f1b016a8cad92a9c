"""USD for token losses: ask a historical price API for the coins of unpriced token amounts, at the incident day.

`price_pending(db, settings)` is the job (run it every hour beside on-chain verification; `kamiyo prices`
runs it once). It finds records no source states in USD whose loss text is a token amount Kamiyo can price
(`kamiyo.ingest.token_amounts`), works out the (coin, day) pairs not yet in `price_quotes`, and asks
DeFiLlama's keyless coins API for them: `GET {base}/prices/historical/{noon of the day}/{coin,coin,...}`
with a 12-hour search width, every coin of one day in one request, at most MAX_REQUESTS requests a round,
one every `interval` seconds; GIVE_UP_AFTER failures in a row end the round. Every answer is kept, a
missing price too (asked again only after RETRY_MISSING); a failed request (transport error, 4xx/5xx, a
body that is not the API's shape) stores nothing and is asked again next round. Then the records whose
prices arrived are re-derived through the store (`rederive_records`), so summaries, merge keys and events
follow. Offline, nothing is asked and nothing is priced. `KAMIYO_SOURCE_URLS` {"prices": base} replaces
the API base.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.exploits.evidence_models import PriceQuote
from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest.store import rederive_records
from kamiyo.ingest.token_amounts import coins_to_ask, token_amounts
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.http import Fetcher, FetchError, FetchPolicy, new_client

log = logging.getLogger(__name__)
NAME = "prices"  # its key in KAMIYO_SOURCE_URLS
DEFAULT_BASE = "https://coins.llama.fi"
SEARCH_WIDTH = "12h"
MAX_REQUESTS = 60  # per round
COINS_PER_REQUEST = 20
INTERVAL_S = 0.5  # at most two requests a second
RETRY_MISSING = timedelta(days=7)
GIVE_UP_AFTER = 3  # failed requests in a row end the round: a down API is not asked MAX_REQUESTS times
POLICY = FetchPolicy(timeout=20.0, retries=1, backoff=2.0)


@dataclass
class PriceOutcome:
    requests: int = 0
    failed: int = 0
    quotes: int = 0
    missing: int = 0
    repriced: int = 0
    pending: int = 0  # (coin, day) pairs left for a later round by the request cap
    disabled: str | None = None
    errors: list[str] = field(default_factory=list)


def price_base(settings: Settings) -> str:
    return settings.source_urls.get(NAME, DEFAULT_BASE).rstrip("/")


async def wanted_pairs(session: AsyncSession, now: datetime) -> dict[tuple[str, date], set[int]]:
    """(coin, day) pairs that unpriced records need and the cache cannot answer, with the records needing each."""
    rows = await session.execute(
        select(Exploit.id, Exploit.timestamp, ReportRow.amount_text)
        .join(ReportRow, ReportRow.exploit_id == Exploit.id)
        .where(Exploit.amount_status == "unpriced", ReportRow.amount_text.is_not(None))
    )
    needs: dict[tuple[str, date], set[int]] = {}
    for exploit_id, ts, text in rows:
        for coin in coins_to_ask(token_amounts(text)):
            needs.setdefault((coin, ts.date()), set()).add(exploit_id)
    if not needs:
        return {}
    cached = await session.execute(
        select(PriceQuote.coin, PriceQuote.day, PriceQuote.price_usd, PriceQuote.fetched_at).where(
            PriceQuote.coin.in_({coin for coin, _ in needs}), PriceQuote.day.in_({day for _, day in needs})
        )
    )
    for coin, day, price, fetched_at in cached:
        if price is not None or fetched_at > now - RETRY_MISSING:
            needs.pop((coin, day), None)
    return needs


def requests_for(pairs: Sequence[tuple[str, date]]) -> list[tuple[date, list[str]]]:
    """Newest days first; each day's coins in batches of COINS_PER_REQUEST."""
    by_day: dict[date, list[str]] = {}
    for coin, day in sorted(pairs):
        by_day.setdefault(day, []).append(coin)
    batches = []
    for day in sorted(by_day, reverse=True):
        coins = by_day[day]
        batches += [(day, coins[i : i + COINS_PER_REQUEST]) for i in range(0, len(coins), COINS_PER_REQUEST)]
    return batches


class AnswerError(Exception):
    """The price API answered something that is not its historical-prices shape."""


def read_answer(content: bytes, coins: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each asked coin's quote ({"price", "symbol", "timestamp", "confidence"}), None where the API has none."""
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise AnswerError("the answer is not JSON") from exc
    found = body.get("coins") if isinstance(body, dict) else None
    if not isinstance(found, dict):
        raise AnswerError('the answer has no "coins" object')
    quotes: dict[str, dict[str, Any] | None] = {}
    for coin in coins:
        entry = found.get(coin)
        price = entry.get("price") if isinstance(entry, dict) else None
        ok = isinstance(price, int | float) and not isinstance(price, bool) and math.isfinite(price) and price > 0
        quotes[coin] = entry if ok and isinstance(entry, dict) else None
    return quotes


def _quote_row(coin: str, day: date, quote: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {"coin": coin, "day": day, "price_usd": None, "symbol": None, "quoted_at": None}
    row |= {"confidence": None, "fetched_at": now}
    if quote is None:
        return row
    stamp, symbol, confidence = quote.get("timestamp"), quote.get("symbol"), quote.get("confidence")
    row["price_usd"] = float(quote["price"])
    row["symbol"] = symbol[:32] if isinstance(symbol, str) else None
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 < stamp < 1e11:
        row["quoted_at"] = datetime.fromtimestamp(stamp, UTC)
    if isinstance(confidence, int | float) and not isinstance(confidence, bool) and math.isfinite(confidence):
        row["confidence"] = float(confidence)
    return row


async def ask(fetcher: Fetcher, base: str, day: date, coins: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """One request for `coins` at noon (UTC) of `day`. Raises FetchError or AnswerError."""
    noon = int(datetime.combine(day, time(12), UTC).timestamp())
    url = f"{base}/prices/historical/{noon}/{','.join(coins)}"
    document = await fetcher.get(url, params={"searchWidth": SEARCH_WIDTH}, conditional=False)
    if document is None:  # pragma: no cover - an unconditional request is never answered 304
        raise AnswerError("unexpected 304")
    return read_answer(document.content, coins)


def _described(exc: Exception) -> str:
    """What went wrong, without the URL (a mirror's URL may carry a key)."""
    if isinstance(exc, FetchError):
        return f"HTTP {exc.status}" if exc.status else "no answer (timeout or connection failure)"
    return str(exc)


async def store_quotes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Keep these answers, replacing what was cached for the same (coin, day)."""
    for row in rows:
        await session.execute(delete(PriceQuote).where(PriceQuote.coin == row["coin"], PriceQuote.day == row["day"]))
    if rows:
        await session.execute(insert(PriceQuote), rows)


async def price_pending(
    db: Database,
    settings: Settings,
    *,
    max_requests: int | None = None,
    interval: float | None = None,
    policy: FetchPolicy | None = None,
    http: httpx.AsyncClient | None = None,
) -> PriceOutcome:
    """One round of the job (see the module docstring; unset limits are the module's). Holds no database
    session during requests."""
    max_requests = MAX_REQUESTS if max_requests is None else max_requests
    interval = INTERVAL_S if interval is None else interval
    outcome = PriceOutcome()
    if settings.offline:
        outcome.disabled = "KAMIYO_OFFLINE is set"
        return outcome
    async with db.session() as session:
        needs = await wanted_pairs(session, utcnow())
    batches = requests_for(list(needs))
    outcome.pending = sum(len(coins) for _, coins in batches[max_requests:])
    client = http or new_client()
    fetcher = Fetcher(client, policy=policy or POLICY)
    base = price_base(settings)
    rows: list[dict[str, Any]] = []
    in_a_row = 0
    try:
        for number, (day, coins) in enumerate(batches[:max_requests]):
            if in_a_row >= GIVE_UP_AFTER:
                break
            if number and interval > 0:
                await asyncio.sleep(interval)
            try:
                answer = await ask(fetcher, base, day, coins)
            except (FetchError, AnswerError) as exc:
                outcome.failed += 1
                in_a_row += 1
                outcome.errors.append(f"{day.isoformat()}: {_described(exc)}")
                log.warning("price request failed; asked again next round", extra={"day": day.isoformat()})
                continue
            in_a_row = 0
            now = utcnow()
            rows += [_quote_row(coin, day, answer[coin], now) for coin in coins]
    finally:
        outcome.requests = fetcher.requests
        if http is None:
            await client.aclose()
    outcome.quotes = sum(1 for r in rows if r["price_usd"] is not None)
    outcome.missing = len(rows) - outcome.quotes
    affected = {exploit_id for r in rows if r["price_usd"] is not None for exploit_id in needs[(r["coin"], r["day"])]}
    async with db.session() as session:
        await store_quotes(session, rows)
        if affected:
            result = await rederive_records(session, sorted(affected))
            outcome.repriced = len(result.updated)
    return outcome
