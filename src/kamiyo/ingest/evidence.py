"""What Kamiyo found beside the sources' words, for deriving records: the attack transaction's block time
(read over JSON-RPC by the on-chain job) and the USD price of stated token amounts (the price job).

Both are kept in their own tables and read here for the records being derived, so a record stays a
function of its reports, its corrections and this evidence: re-deriving never loses a block time or a price.
Offline, both are empty and records keep the day their sources state and amounts stay unpriced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.evidence_models import BlockTime, OnchainCheck, PriceQuote
from kamiyo.exploits.models import Exploit
from kamiyo.ingest.token_amounts import coins_to_ask, token_amounts
from kamiyo.kit.timeutil import iso

CHUNK = 500
Quote = tuple[float, str | None]  # a USD price and the ISO time of its price point
BlockFacts = tuple[dict[str, datetime], dict[str, str], dict[tuple[str, int], datetime]]


@dataclass(frozen=True, slots=True)
class Evidence:
    # attack tx hash (as stored) -> the time of the block that holds it (the on-chain job found it mined)
    block_times: Mapping[str, datetime] = field(default_factory=dict)
    # attack tx hash -> the address that sent it (stands in for an attacker no source names)
    senders: Mapping[str, str] = field(default_factory=dict)
    # (chain, block a PoC forks at) -> the time of the next block, where the attack is (see `fork_block`)
    fork_times: Mapping[tuple[str, int], datetime] = field(default_factory=dict)
    # (price API coin id, day) -> that day's USD price and the time of its price point
    prices: Mapping[tuple[str, date], Quote] = field(default_factory=dict)


NONE = Evidence()


def fork_block(details: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """A report's PoC fork block as (chain, number), if it states a valid one."""
    value = (details or {}).get("fork_block")
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    chain, number = value
    valid = isinstance(chain, str) and isinstance(number, int) and not isinstance(number, bool) and number >= 0
    return (chain, number) if valid else None


async def load_evidence(session: AsyncSession, reports: Mapping[int, Sequence[Any]]) -> dict[int, Evidence]:
    """The evidence for each exploit id in `reports` (its report rows, as `derive` reads them)."""
    prices = await _price_evidence(session, reports)
    blocks = await _block_evidence(session, reports)
    found: dict[int, Evidence] = {}
    for exploit_id in prices.keys() | blocks.keys():
        times, senders, forks = blocks.get(exploit_id, ({}, {}, {}))
        found[exploit_id] = Evidence(times, senders, forks, prices.get(exploit_id, {}))
    return found


async def _price_evidence(
    session: AsyncSession, reports: Mapping[int, Sequence[Any]]
) -> dict[int, dict[tuple[str, date], Quote]]:
    """For records no report states in USD, the cached quotes of the coins their token amounts name, on the
    days their reports give and the day the record holds (the incident day `derive` prices at)."""
    wanted: dict[int, tuple[set[str], set[date]]] = {}
    for exploit_id, rows in reports.items():
        if any(r.amount_usd is not None for r in rows):
            continue
        coins = {c for r in rows for c in coins_to_ask(token_amounts(r.amount_text))}
        if coins:
            wanted[exploit_id] = (coins, {r.timestamp.date() for r in rows})
    if not wanted:
        return {}
    ids = list(wanted)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for exploit_id, ts in await session.execute(select(Exploit.id, Exploit.timestamp).where(Exploit.id.in_(chunk))):
            wanted[exploit_id][1].add(ts.date())
    pairs = {(coin, day) for coins, days in wanted.values() for coin in coins for day in days}
    quotes = await _quotes(session, pairs)
    found: dict[int, dict[tuple[str, date], Quote]] = {}
    for exploit_id, (coins, days) in wanted.items():
        prices = {(c, d): quotes[(c, d)] for c in coins for d in days if (c, d) in quotes}
        if prices:
            found[exploit_id] = prices
    return found


async def _quotes(session: AsyncSession, pairs: set[tuple[str, date]]) -> dict[tuple[str, date], Quote]:
    """The cached prices (not the asked-but-missing ones) of these (coin, day) pairs."""
    found: dict[tuple[str, date], Quote] = {}
    coins = sorted({coin for coin, _ in pairs})
    days = sorted({day for _, day in pairs})
    for start in range(0, len(days), CHUNK):
        rows = await session.execute(
            select(PriceQuote.coin, PriceQuote.day, PriceQuote.price_usd, PriceQuote.quoted_at).where(
                PriceQuote.coin.in_(coins), PriceQuote.day.in_(days[start : start + CHUNK]),
                PriceQuote.price_usd.is_not(None),
            )
        )  # fmt: skip
        for coin, day, price, quoted_at in rows:
            if (coin, day) in pairs and price is not None:
                found[(coin, day)] = (price, iso(quoted_at) if quoted_at else None)
    return found


async def _block_evidence(session: AsyncSession, reports: Mapping[int, Sequence[Any]]) -> dict[int, BlockFacts]:
    """Per exploit: its verified transaction's block time and sender, and the cached times of the blocks after
    its reports' fork blocks. Two queries whatever the number of exploits (callers pass chunks)."""
    found: dict[int, BlockFacts] = {}
    if not reports:
        return found
    checks = await session.execute(
        select(OnchainCheck.exploit_id, OnchainCheck.tx_hash, OnchainCheck.block_time, OnchainCheck.from_address).where(
            OnchainCheck.exploit_id.in_(list(reports)), OnchainCheck.status == "verified"
        )
    )
    for exploit_id, tx_hash, block_time, sender in checks:
        if block_time is None:
            continue
        times, senders, _ = found.setdefault(exploit_id, ({}, {}, {}))
        times[tx_hash] = block_time
        if sender:
            senders[tx_hash] = sender
    forks = {
        exploit_id: {fork for row in rows if (fork := fork_block(row.details))} for exploit_id, rows in reports.items()
    }
    wanted = {(chain, number + 1) for found_forks in forks.values() for chain, number in found_forks}
    if wanted:
        rows = await session.execute(
            select(BlockTime.chain, BlockTime.number, BlockTime.time).where(
                BlockTime.number.in_({number for _, number in wanted})
            )
        )
        cached = {(chain, number): time for chain, number, time in rows if (chain, number) in wanted}
        for exploit_id, found_forks in forks.items():
            for chain, number in found_forks:
                if (time := cached.get((chain, number + 1))) is not None:
                    found.setdefault(exploit_id, ({}, {}, {}))[2][(chain, number)] = time
    return found
