"""On-chain evidence: confirm EVM exploit transactions through a JSON-RPC endpoint per chain.

`verify_pending(db, settings)` is the job (run it every few minutes; `kamiyo verify` runs it once). It
picks public EVM exploits with a tx hash, not yet `verified_on_chain` and due for a check (newest first),
asks the chain's endpoint (`KAMIYO_RPC_URLS`) for `eth_getTransactionByHash`, `eth_getTransactionReceipt`
and the block (`eth_getBlockByNumber`), and records the outcome in `onchain_checks`:

- mined and successful: `verified_on_chain` = true, the incident time becomes the block time (UTC), the
  attacker address becomes the transaction's `from` when no source named one, and the called (or created)
  contract is kept as `to_address`;
- unknown to the node: `not_found`, looked at again after 1, 7 and 30 days; reverted: `reverted`, never
  verified; pending or an RPC failure: looked at again soon.

The facts it fixes are outside `store_reports`, so a later re-derivation from reports could undo them:
each run first re-applies them to verified exploits changed since their check, and un-verifies one whose
tx hash changed. An endpoint whose `eth_chainId` is not its chain's is skipped. URLs (which often carry
an API key) never appear in logs or stored errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, delete, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.enrich.onchain_models import OnchainCheck
from kamiyo.exploits.cache import bump_data_version
from kamiyo.exploits.models import Exploit, is_public
from kamiyo.exploits.stats import refresh_days
from kamiyo.ingest.models import MergeKey
from kamiyo.ingest.normalise import CHAIN_IDS
from kamiyo.kit.timeutil import utcnow
from kamiyo.taxonomy import CHAINS

log = logging.getLogger(__name__)
CONCURRENCY = 8
TIMEOUT_S = 10.0
# When to look again, by outcome and attempt (the last delay repeats; None: never again).
RECHECK: dict[str, list[timedelta] | None] = {
    "not_found": [timedelta(days=1), timedelta(days=7), timedelta(days=30)],
    "pending": [timedelta(minutes=10)],
    "failed": [timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6)],
    "reverted": None,
    "verified": None,
}
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class RpcError(Exception):
    """A failed call, described without the endpoint's URL."""


@dataclass(frozen=True, slots=True)
class Candidate:
    exploit_id: int
    chain: str
    tx_hash: str


@dataclass(slots=True)
class TxFacts:
    status: str  # verified | not_found | reverted | pending | failed
    block_number: int | None = None
    block_time: datetime | None = None
    from_address: str | None = None
    to_address: str | None = None
    error: str | None = None


@dataclass
class VerifyOutcome:
    checked: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    skipped_chains: dict[str, str] = field(default_factory=dict)
    reapplied: int = 0
    reset: int = 0
    disabled: str | None = None


def evm_rpc_urls(settings: Settings) -> dict[str, str]:
    """The configured endpoints of known EVM chains (others are ignored with a warning)."""
    urls: dict[str, str] = {}
    for chain, url in settings.rpc_urls.items():
        meta = CHAINS.get(chain)
        if meta is None or meta.family != "evm" or not url.startswith(("http://", "https://")):
            log.warning("KAMIYO_RPC_URLS: ignoring %r (not an EVM chain slug with an http(s) URL)", chain)
            continue
        urls[chain] = url
    return urls


class RpcClient:
    """JSON-RPC 2.0 over HTTP POST to one endpoint."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self._next_id = 0

    async def call(self, method: str, params: list[Any]) -> Any:
        self._next_id += 1
        payload = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        try:
            response = await self.http.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise RpcError(f"{method}: timed out") from exc
        except httpx.HTTPError as exc:
            raise RpcError(f"{method}: connection failed ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RpcError(f"{method}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RpcError(f"{method}: the answer is not JSON") from exc
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise RpcError(f"{method}: not a JSON-RPC answer")
        if body.get("error") is not None:
            error = body["error"] if isinstance(body["error"], dict) else {}
            raise RpcError(f"{method}: JSON-RPC error {error.get('code')}: {str(error.get('message'))[:200]}")
        return body["result"]


def quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise RpcError(f"{what}: not a hex quantity")
    return int(value, 16)


def address_or_none(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _ADDRESS.fullmatch(value) else None


async def look_up(rpc: RpcClient, tx_hash: str) -> TxFacts:
    """What the node knows of one transaction (raises RpcError on a failed or malformed call)."""
    tx = await rpc.call("eth_getTransactionByHash", [tx_hash])
    if tx is None:
        return TxFacts("not_found")
    if not isinstance(tx, dict) or str(tx.get("hash", "")).lower() != tx_hash:
        raise RpcError("eth_getTransactionByHash: the answer is not this transaction")
    if tx.get("blockNumber") is None:
        return TxFacts("pending", from_address=address_or_none(tx.get("from")))
    number = quantity(tx["blockNumber"], "blockNumber")
    receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
    block = await rpc.call("eth_getBlockByNumber", [hex(number), False])
    if not isinstance(receipt, dict) or not isinstance(block, dict):
        raise RpcError("receipt or block missing for a mined transaction")
    seconds = quantity(block.get("timestamp"), "block timestamp")
    facts = TxFacts(
        "verified",
        block_number=number,
        block_time=datetime.fromtimestamp(seconds, UTC),
        from_address=address_or_none(tx.get("from")),
        to_address=address_or_none(tx.get("to")) or address_or_none(receipt.get("contractAddress")),
    )
    status = receipt.get("status")  # absent before Byzantium (2017): mined is all there is to know
    if status is not None and quantity(status, "receipt status") == 0:
        facts.status = "reverted"
    return facts


async def _chain_ok(rpc: RpcClient, chain: str) -> str | None:
    """None if the endpoint answers as `chain`; else why it is skipped."""
    expected = {chain_id for chain_id, slug in CHAIN_IDS.items() if slug == chain}
    try:
        chain_id = quantity(await rpc.call("eth_chainId", []), "eth_chainId")
    except RpcError as exc:
        return str(exc)
    if expected and chain_id not in expected:
        return f"endpoint is chain id {chain_id}, not {chain}"
    return None


async def check_chain(
    http: httpx.AsyncClient, url: str, chain: str, candidates: Sequence[Candidate], limit: asyncio.Semaphore
) -> tuple[list[tuple[Candidate, TxFacts]], str | None]:
    rpc = RpcClient(http, url)
    problem = await _chain_ok(rpc, chain)
    if problem is not None:
        log.warning("on-chain check of %s skipped: %s", chain, problem)
        return [], problem

    async def one(candidate: Candidate) -> tuple[Candidate, TxFacts]:
        async with limit:
            try:
                return candidate, await look_up(rpc, candidate.tx_hash)
            except RpcError as exc:
                return candidate, TxFacts("failed", error=str(exc)[:500])

    return list(await asyncio.gather(*(one(c) for c in candidates))), None


async def check_all(
    http: httpx.AsyncClient, urls: dict[str, str], candidates: Sequence[Candidate]
) -> tuple[list[tuple[Candidate, TxFacts]], dict[str, str]]:
    """Every candidate looked up on its chain's endpoint, CONCURRENCY calls at a time in all."""
    limit = asyncio.Semaphore(CONCURRENCY)
    by_chain: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_chain.setdefault(candidate.chain, []).append(candidate)
    runs = [check_chain(http, urls[chain], chain, found, limit) for chain, found in by_chain.items()]
    results: list[tuple[Candidate, TxFacts]] = []
    skipped: dict[str, str] = {}
    for chain, (found, problem) in zip(by_chain, await asyncio.gather(*runs), strict=True):
        results += found
        if problem:
            skipped[chain] = problem
    return results, skipped


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


async def _apply(
    session: AsyncSession, exploit_id: int, tx_hash: str, facts: TxFacts, now: datetime, days: set[date]
) -> bool:
    """Mark the exploit verified with the block's time and sender; False if its tx hash moved meanwhile."""
    row = (
        await session.execute(
            select(Exploit.timestamp, Exploit.attacker_address).where(
                Exploit.id == exploit_id, Exploit.tx_hash == tx_hash
            )
        )
    ).first()
    if row is None or facts.block_time is None:
        return False
    values: dict[str, Any] = {"verified_on_chain": True, "timestamp": facts.block_time, "updated_at": now}
    if not row.attacker_address and facts.from_address:
        values["attacker_address"] = facts.from_address
    await session.execute(update(Exploit).where(Exploit.id == exploit_id).values(**values))
    if row.timestamp != facts.block_time:
        days.update({row.timestamp.date(), facts.block_time.date()})
        await session.execute(
            update(MergeKey).where(MergeKey.exploit_id == exploit_id).values(ts=facts.block_time.timestamp())
        )
    return True


async def record(session: AsyncSession, results: Sequence[tuple[Candidate, TxFacts]], now: datetime) -> int:
    """Store every outcome and apply the verified ones; returns how many exploits changed."""
    days: set[date] = set()
    changed = 0
    for candidate, facts in results:
        await _save_check(session, candidate, facts, now)
        if facts.status == "verified":
            changed += await _apply(session, candidate.exploit_id, candidate.tx_hash, facts, now, days)
    await session.flush()
    await _after_change(session, changed, days)
    return changed


async def _after_change(session: AsyncSession, changed: int, days: set[date]) -> None:
    """Keep the daily summaries and the response cache in step with direct writes to exploits."""
    if days:
        await refresh_days(session, days)
    if changed:
        await bump_data_version(session)


async def reconcile(session: AsyncSession, now: datetime) -> tuple[int, int]:
    """Verified exploits re-derived since their check: re-apply the block facts, or un-verify one whose
    tx hash is no longer the one checked. Returns (re-applied, reset)."""
    rows = await session.execute(
        select(Exploit.id, Exploit.tx_hash, OnchainCheck)
        .join(OnchainCheck, OnchainCheck.exploit_id == Exploit.id)
        .where(OnchainCheck.status == "verified", Exploit.updated_at > OnchainCheck.checked_at)
    )
    days: set[date] = set()
    reapplied = reset = 0
    for exploit_id, tx_hash, check in rows:
        if tx_hash != check.tx_hash:
            await session.execute(update(Exploit).where(Exploit.id == exploit_id).values(verified_on_chain=False))
            await session.execute(delete(OnchainCheck).where(OnchainCheck.exploit_id == exploit_id))
            reset += 1
            continue
        facts = TxFacts("verified", block_time=check.block_time, from_address=check.from_address)
        reapplied += await _apply(session, exploit_id, tx_hash, facts, now, days)
        check.checked_at = now
    await session.flush()
    await _after_change(session, reapplied + reset, days)
    return reapplied, reset


async def verify_pending(
    db: Database, settings: Settings, *, limit: int = 100, http: httpx.AsyncClient | None = None
) -> VerifyOutcome:
    """One round of the job (see the module docstring). Holds no database session during RPC calls."""
    outcome = VerifyOutcome()
    urls = evm_rpc_urls(settings)
    if settings.offline or not urls:
        outcome.disabled = "KAMIYO_OFFLINE is set" if settings.offline else "KAMIYO_RPC_URLS names no EVM chain"
        return outcome
    now = utcnow()
    async with db.session() as session:
        outcome.reapplied, outcome.reset = await reconcile(session, now)
        candidates = await pick_candidates(session, urls, limit, now)
    client = http or httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), follow_redirects=False)
    try:
        results, outcome.skipped_chains = await check_all(client, urls, candidates)
    finally:
        if http is None:
            await client.aclose()
    async with db.session() as session:
        await record(session, results, utcnow())
    outcome.checked = len(results)
    for _, facts in results:
        outcome.by_status[facts.status] = outcome.by_status.get(facts.status, 0) + 1
    return outcome
