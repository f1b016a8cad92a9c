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

from kamiyo.enrich.onchain_models import BlockTime, OnchainCheck


@dataclass(frozen=True, slots=True)
class Evidence:
    # attack tx hash (as stored) -> the time of the block that holds it (the on-chain job found it mined)
    block_times: Mapping[str, datetime] = field(default_factory=dict)
    # attack tx hash -> the address that sent it (stands in for an attacker no source names)
    senders: Mapping[str, str] = field(default_factory=dict)
    # (chain, block a PoC forks at) -> the time of the next block, where the attack is (see `fork_block`)
    fork_times: Mapping[tuple[str, int], datetime] = field(default_factory=dict)
    # (price API coin id, day) -> that day's USD price
    prices: Mapping[tuple[str, date], float] = field(default_factory=dict)


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
    blocks = await _block_evidence(session, reports)
    return {
        exploit_id: Evidence(block_times=times, senders=senders, fork_times=forks)
        for exploit_id, (times, senders, forks) in blocks.items()
    }


async def _block_evidence(
    session: AsyncSession, reports: Mapping[int, Sequence[Any]]
) -> dict[int, tuple[dict[str, datetime], dict[str, str], dict[tuple[str, int], datetime]]]:
    """Per exploit: its verified transaction's block time and sender, and the cached times of the blocks after
    its reports' fork blocks. Two queries whatever the number of exploits (callers pass chunks)."""
    found: dict[int, tuple[dict[str, datetime], dict[str, str], dict[tuple[str, int], datetime]]] = {}
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
