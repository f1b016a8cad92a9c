"""On-chain evidence: confirm EVM exploit transactions and read their block times over JSON-RPC.

`verify_pending(db, settings)` is the job (run it every few minutes; `kamiyo verify` runs it once). It
picks public EVM exploits with a tx hash, not yet `verified_on_chain` and due for a check (newest first),
asks the chain's endpoint (`KAMIYO_RPC_URLS` over each chain's keyless public default) for
`eth_getTransactionByHash` and `eth_getTransactionReceipt` (JSON-RPC batches of BATCH calls), and records
the outcome in `onchain_checks`:

- mined and successful: `verified_on_chain` = true; the block's time, the sender and the called (or
  created) contract are kept with the check;
- unknown to the node: `not_found`, looked at again after 1, 7 and 30 days; reverted: `reverted`, never
  verified; pending or an RPC failure: looked at again soon.

Block times come from `eth_getBlockByNumber`, one request per block, kept in `block_times` and reused by
every exploit and round. When a transaction cannot be looked up (`not_found`, `failed`), the block after
its PoC's fork block (DeFiHackLabs) is read instead. The records concerned are then re-derived through the
store's path (`rederive_records`): `derive` reads these facts as evidence (`kamiyo.ingest.evidence`),
so the incident time becomes the block time (`time_precision` "block") and a later re-derivation (a new
report) keeps it. A verified exploit whose tx hash changed since its check is un-verified and checked again.

The calls themselves are `kamiyo.enrich.evm_rpc`'s: an endpoint whose `eth_chainId` is not its chain's is
skipped, and URLs (which often carry an API key) never appear in logs or stored errors. Offline, nothing is
asked and records keep their stated days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import httpx
from sqlalchemy import Table, and_, delete, false, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.enrich.evm_rpc import Block, Candidate, TxFacts, check_all, evm_rpc_urls, fetch_blocks
from kamiyo.exploits.evidence_models import BlockTime, OnchainCheck
from kamiyo.exploits.models import Exploit, ReportRow, is_public
from kamiyo.ingest.evidence import fork_block
from kamiyo.ingest.store import rederive_records
from kamiyo.kit.timeutil import utcnow

TIMEOUT_S = 10.0
# When to look again, by outcome and attempt (the last delay repeats; None: never again).
RECHECK: dict[str, list[timedelta] | None] = {
    "not_found": [timedelta(days=1), timedelta(days=7), timedelta(days=30)],
    "pending": [timedelta(minutes=10)],
    "failed": [timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6)],
    "reverted": None,
    "verified": None,
}


@dataclass
class VerifyOutcome:
    checked: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    skipped_chains: dict[str, str] = field(default_factory=dict)
    blocks_fetched: int = 0  # eth_getBlockByNumber answers stored this round (cached blocks are not asked)
    updated: int = 0  # records re-derived with a change (a block time, a sender standing in for the attacker)
    reset: int = 0
    disabled: str | None = None


async def pick_candidates(session: AsyncSession, chains: Iterable[str], limit: int, now: datetime) -> list[Candidate]:
    """Unverified public exploits on these chains with a tx hash, never checked or due again, newest first."""
    due = or_(
        OnchainCheck.exploit_id.is_(None),
        and_(OnchainCheck.next_check_at.is_not(None), OnchainCheck.next_check_at <= now),
        OnchainCheck.tx_hash != Exploit.tx_hash,
    )
    rows = await session.execute(
        select(Exploit.id, Exploit.chain, Exploit.tx_hash)
        .outerjoin(OnchainCheck, OnchainCheck.exploit_id == Exploit.id)
        .where(
            is_public(), Exploit.verified_on_chain == false(), Exploit.tx_hash.like("0x%"),
            Exploit.chain.in_(list(chains)), due,
        )
        .order_by(Exploit.timestamp.desc(), Exploit.id.desc())
        .limit(limit)
    )  # fmt: skip
    return [Candidate(i, chain, tx) for i, chain, tx in rows if tx]


def _next_check(status: str, attempts: int, now: datetime) -> datetime | None:
    delays = RECHECK.get(status)
    return now + delays[min(attempts, len(delays)) - 1] if delays else None


async def _save_check(session: AsyncSession, candidate: Candidate, facts: TxFacts, now: datetime) -> None:
    check = await session.get(OnchainCheck, candidate.exploit_id)
    if check is None:
        check = OnchainCheck(exploit_id=candidate.exploit_id, attempts=0)
        session.add(check)
    elif check.tx_hash != candidate.tx_hash:
        check.attempts = 0
    check.attempts = (check.attempts or 0) + 1
    check.tx_hash, check.chain, check.status = candidate.tx_hash, candidate.chain, facts.status
    check.checked_at, check.next_check_at = now, _next_check(facts.status, check.attempts, now)
    check.block_number, check.block_time, check.error = facts.block_number, facts.block_time, facts.error
    check.from_address, check.to_address = facts.from_address, facts.to_address


async def fork_blocks(session: AsyncSession, exploit_ids: Sequence[int]) -> dict[int, set[Block]]:
    """The PoC fork blocks the reports of these exploits state."""
    found: dict[int, set[Block]] = {}
    for start in range(0, len(exploit_ids), 5000):
        rows = await session.execute(
            select(ReportRow.exploit_id, ReportRow.details).where(
                ReportRow.exploit_id.in_(exploit_ids[start : start + 5000]), ReportRow.details.is_not(None)
            )
        )
        for exploit_id, details in rows:
            if fork := fork_block(details):
                found.setdefault(exploit_id, set()).add(fork)
    return found


async def cached_blocks(session: AsyncSession, blocks: set[Block]) -> dict[Block, datetime]:
    found: dict[Block, datetime] = {}
    numbers = sorted({number for _, number in blocks})
    for start in range(0, len(numbers), 5000):
        rows = await session.execute(
            select(BlockTime.chain, BlockTime.number, BlockTime.time).where(
                BlockTime.number.in_(numbers[start : start + 5000])
            )
        )
        found.update({(c, n): t for c, n, t in rows if (c, n) in blocks})
    return found


async def store_blocks(session: AsyncSession, times: dict[Block, datetime]) -> None:
    if not times:
        return
    table = cast(Table, BlockTime.__table__)
    dialect = session.get_bind().dialect.name
    statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    rows = [{"chain": chain, "number": number, "time": time} for (chain, number), time in times.items()]
    await session.execute(statement.on_conflict_do_nothing(), rows)


def _timed_by_block(
    results: Sequence[tuple[Candidate, TxFacts]], times: dict[Block, datetime], errors: dict[Block, str]
) -> None:
    """Give mined transactions their block's time; one whose block could not be read is looked at again soon."""
    for candidate, facts in results:
        if facts.block_number is None or facts.status not in ("verified", "reverted"):
            continue
        block = (candidate.chain, facts.block_number)
        facts.block_time = times.get(block)
        if facts.block_time is None:
            facts.status = "failed"
            facts.error = errors.get(block, f"block {facts.block_number}: no time")


async def record(
    session: AsyncSession, results: Sequence[tuple[Candidate, TxFacts]], forked: set[int], now: datetime
) -> int:
    """Store every outcome, mark the verified exploits, and re-derive those with a new block time (a verified
    tx's, or `forked`: the block after their fork block); returns how many records changed."""
    ids = [c.exploit_id for c, _ in results]
    loaded: list[OnchainCheck] = []  # in the session's identity map: `_save_check` finds them without a query
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        loaded += (await session.execute(select(OnchainCheck).where(OnchainCheck.exploit_id.in_(chunk)))).scalars()
    for candidate, facts in results:
        await _save_check(session, candidate, facts, now)
    checked = {c.exploit_id: c.tx_hash for c, f in results if f.status == "verified"}
    verified: list[int] = []
    ids = list(checked)
    for start in range(0, len(ids), 5000):  # a record whose hash moved meanwhile is not verified (reconcile)
        chunk = ids[start : start + 5000]
        hashes = await session.execute(select(Exploit.id, Exploit.tx_hash).where(Exploit.id.in_(chunk)))
        verified += [exploit_id for exploit_id, tx_hash in hashes if tx_hash == checked[exploit_id]]
    for start in range(0, len(verified), 5000):
        chunk = verified[start : start + 5000]
        await session.execute(update(Exploit).where(Exploit.id.in_(chunk)).values(verified_on_chain=True))
    await session.flush()
    return len((await rederive_records(session, {*verified, *forked}, now=now)).updated)


async def reconcile(session: AsyncSession) -> int:
    """Un-verify exploits whose tx hash is no longer the one checked (a source corrected it), so the new one is
    checked; returns how many. Block times need no re-applying: derive reads them as evidence."""
    rows = await session.execute(
        select(Exploit.id)
        .join(OnchainCheck, OnchainCheck.exploit_id == Exploit.id)
        .where(OnchainCheck.status == "verified", OnchainCheck.tx_hash != Exploit.tx_hash)
    )
    reset = list(rows.scalars())
    if reset:
        await session.execute(update(Exploit).where(Exploit.id.in_(reset)).values(verified_on_chain=False))
        await session.execute(delete(OnchainCheck).where(OnchainCheck.exploit_id.in_(reset)))
    return len(reset)


async def verify_pending(
    db: Database, settings: Settings, *, limit: int = 100, http: httpx.AsyncClient | None = None
) -> VerifyOutcome:
    """One round of the job (see the module docstring). Holds no database session during RPC calls."""
    outcome = VerifyOutcome()
    urls = evm_rpc_urls(settings)
    if settings.offline or not urls:
        outcome.disabled = "KAMIYO_OFFLINE is set" if settings.offline else "KAMIYO_RPC_URLS turns every chain off"
        return outcome
    async with db.session() as session:
        outcome.reset = await reconcile(session)
        candidates = await pick_candidates(session, urls, limit, utcnow())
    client = http or httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), follow_redirects=False)
    try:
        results, outcome.skipped_chains = await check_all(client, urls, candidates)
        answering = {c.chain for c in candidates} - outcome.skipped_chains.keys()
        unfound = [c.exploit_id for c, f in results if f.status in ("not_found", "failed")]
        async with db.session() as session:
            forks = {
                exploit_id: {f for f in found if f[0] in answering}
                for exploit_id, found in (await fork_blocks(session, unfound)).items()
            }
            mined = {(c.chain, f.block_number) for c, f in results if f.block_number is not None}
            wanted = mined | {(chain, number + 1) for found in forks.values() for chain, number in found}
            times = await cached_blocks(session, wanted)
        fetched, errors = await fetch_blocks(client, urls, wanted - times.keys())
    finally:
        if http is None:
            await client.aclose()
    times |= fetched
    _timed_by_block(results, times, errors)
    forked = {e for e, found in forks.items() if any((c, n + 1) in times for c, n in found)}
    async with db.session() as session:
        await store_blocks(session, fetched)
        outcome.updated = await record(session, results, forked, utcnow())
    outcome.blocks_fetched = len(fetched)
    outcome.checked = len(results)
    for _, facts in results:
        outcome.by_status[facts.status] = outcome.by_status.get(facts.status, 0) + 1
    return outcome
