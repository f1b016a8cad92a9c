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

An endpoint whose `eth_chainId` is not its chain's is skipped. URLs (which often carry an API key) never
appear in logs or stored errors. Offline, nothing is asked and records keep their stated days.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, and_, delete, false, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.exploits.evidence_models import BlockTime, OnchainCheck
from kamiyo.exploits.models import Exploit, ReportRow, is_public
from kamiyo.ingest.evidence import fork_block
from kamiyo.ingest.store import rederive_records
from kamiyo.kit.timeutil import utcnow
from kamiyo.vocabulary.normalise import CHAIN_IDS
from kamiyo.vocabulary.taxonomy import CHAINS

log = logging.getLogger(__name__)
CONCURRENCY = 8  # requests in flight at once, over all chains
BATCH = 50  # calls per JSON-RPC batch request (public endpoints commonly accept 50 to 100)
TIMEOUT_S = 10.0
Block = tuple[str, int]  # (chain, number)
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
    blocks_fetched: int = 0  # eth_getBlockByNumber answers stored this round (cached blocks are not asked)
    updated: int = 0  # records re-derived with a change (a block time, a sender standing in for the attacker)
    reset: int = 0
    disabled: str | None = None


def evm_rpc_urls(settings: Settings) -> dict[str, str]:
    """Each EVM chain's endpoint: KAMIYO_RPC_URLS's, else its keyless public default; an empty URL turns a chain
    off. Entries that are not an EVM chain slug with an http(s) URL are ignored with a warning."""
    urls = {slug: meta.rpc for slug, meta in CHAINS.items() if meta.family == "evm" and meta.rpc}
    for chain, url in settings.rpc_urls.items():
        meta = CHAINS.get(chain)
        if meta is not None and meta.family == "evm" and not url:
            urls.pop(chain, None)
        elif meta is None or meta.family != "evm" or not url.startswith(("http://", "https://")):
            log.warning("KAMIYO_RPC_URLS: ignoring %r (not an EVM chain slug with an http(s) URL)", chain)
        else:
            urls[chain] = url
    return urls


class RpcClient:
    """JSON-RPC 2.0 over HTTP POST to one endpoint: single calls, and batches (several calls in one request,
    each answered on its own)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self._next_id = 0

    async def _post(self, what: str, payload: Any) -> Any:
        try:
            response = await self.http.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise RpcError(f"{what}: timed out") from exc
        except httpx.HTTPError as exc:
            raise RpcError(f"{what}: connection failed ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RpcError(f"{what}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise RpcError(f"{what}: the answer is not JSON") from exc

    @staticmethod
    def _result(method: str, body: Any) -> Any:
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise RpcError(f"{method}: not a JSON-RPC answer")
        if body.get("error") is not None:
            error = body["error"] if isinstance(body["error"], dict) else {}
            raise RpcError(f"{method}: JSON-RPC error {error.get('code')}: {str(error.get('message'))[:200]}")
        return body["result"]

    async def call(self, method: str, params: list[Any]) -> Any:
        self._next_id += 1
        payload = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        return self._result(method, await self._post(method, payload))

    async def batch(self, method: str, params: Sequence[list[Any]]) -> list[Any]:
        """One call of `method` per item of `params`, in one request; each answer is its result or the RpcError
        of that call. Raises RpcError when the request as a whole fails."""
        first = self._next_id + 1
        self._next_id += len(params)
        payload = [{"jsonrpc": "2.0", "id": first + i, "method": method, "params": p} for i, p in enumerate(params)]
        body = await self._post(method, payload)
        if not isinstance(body, list):  # a node that refuses the batch answers with one error object
            self._result(method, body)
            raise RpcError(f"{method}: not a JSON-RPC batch answer")
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        answers: list[Any] = []
        for i in range(len(params)):
            try:
                answers.append(self._result(method, by_id.get(first + i)))
            except RpcError as exc:
                answers.append(exc)
        return answers


def quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise RpcError(f"{what}: not a hex quantity")
    return int(value, 16)


def address_or_none(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _ADDRESS.fullmatch(value) else None


def _tx_facts(tx_hash: str, tx: Any) -> TxFacts:
    """What a node's eth_getTransactionByHash answer tells (raises RpcError on a malformed one)."""
    if isinstance(tx, RpcError):
        raise tx
    if tx is None:
        return TxFacts("not_found")
    if not isinstance(tx, dict) or str(tx.get("hash", "")).lower() != tx_hash:
        raise RpcError("eth_getTransactionByHash: the answer is not this transaction")
    if tx.get("blockNumber") is None:
        return TxFacts("pending", from_address=address_or_none(tx.get("from")))
    return TxFacts(
        "verified",
        block_number=quantity(tx["blockNumber"], "blockNumber"),
        from_address=address_or_none(tx.get("from")),
        to_address=address_or_none(tx.get("to")),
    )


def _with_receipt(facts: TxFacts, receipt: Any) -> None:
    """A mined transaction's outcome from its receipt (raises RpcError on a missing or malformed one)."""
    if isinstance(receipt, RpcError):
        raise receipt
    if not isinstance(receipt, dict):
        raise RpcError("receipt missing for a mined transaction")
    facts.to_address = facts.to_address or address_or_none(receipt.get("contractAddress"))
    status = receipt.get("status")  # absent before Byzantium (2017): mined is all there is to know
    if status is not None and quantity(status, "receipt status") == 0:
        facts.status = "reverted"


async def look_up(rpc: RpcClient, tx_hashes: Sequence[str]) -> list[TxFacts]:
    """What the node knows of these transactions, but their blocks' times: one batch of transactions, one of
    the mined ones' receipts. A call that failed or answered nonsense is `failed` on its own; a failed batch
    raises RpcError."""
    found: list[TxFacts] = []
    answers = await rpc.batch("eth_getTransactionByHash", [[h] for h in tx_hashes])
    for tx_hash, answer in zip(tx_hashes, answers, strict=True):
        try:
            found.append(_tx_facts(tx_hash, answer))
        except RpcError as exc:
            found.append(TxFacts("failed", error=str(exc)[:500]))
    mined = [(h, f) for h, f in zip(tx_hashes, found, strict=True) if f.status == "verified"]
    if mined:
        receipts = await rpc.batch("eth_getTransactionReceipt", [[h] for h, _ in mined])
        for (_, facts), receipt in zip(mined, receipts, strict=True):
            try:
                _with_receipt(facts, receipt)
            except RpcError as exc:
                facts.status, facts.error = "failed", str(exc)[:500]
    return found


def _block_time(block: Any) -> datetime:
    if isinstance(block, RpcError):
        raise block
    if not isinstance(block, dict):
        raise RpcError("eth_getBlockByNumber: the block is unknown to the node")
    return datetime.fromtimestamp(quantity(block.get("timestamp"), "block timestamp"), UTC)


async def fetch_blocks(
    http: httpx.AsyncClient, urls: dict[str, str], blocks: Iterable[Block]
) -> tuple[dict[Block, datetime], dict[Block, str]]:
    """Each block's time, one eth_getBlockByNumber per block (BATCH to a request, CONCURRENCY requests at a
    time); and why the others have none."""
    limit = asyncio.Semaphore(CONCURRENCY)
    by_chain: dict[str, list[int]] = {}
    for chain, number in sorted(set(blocks)):
        if chain in urls:
            by_chain.setdefault(chain, []).append(number)
    times: dict[Block, datetime] = {}
    errors: dict[Block, str] = {}

    async def one(chain: str, numbers: list[int]) -> None:
        async with limit:
            try:
                answers = await RpcClient(http, urls[chain]).batch(
                    "eth_getBlockByNumber", [[hex(n), False] for n in numbers]
                )
            except RpcError as exc:
                answers = [exc] * len(numbers)
        for number, answer in zip(numbers, answers, strict=True):
            try:
                times[(chain, number)] = _block_time(answer)
            except RpcError as exc:
                errors[(chain, number)] = f"block {number}: {str(exc)[:400]}"

    await asyncio.gather(
        *(
            one(chain, numbers[i : i + BATCH])
            for chain, numbers in by_chain.items()
            for i in range(0, len(numbers), BATCH)
        )
    )
    return times, errors


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

    async def one(batch: Sequence[Candidate]) -> list[tuple[Candidate, TxFacts]]:
        async with limit:
            try:
                found = await look_up(rpc, [c.tx_hash for c in batch])
            except RpcError as exc:
                found = [TxFacts("failed", error=str(exc)[:500]) for _ in batch]
        return list(zip(batch, found, strict=True))

    batches = [candidates[i : i + BATCH] for i in range(0, len(candidates), BATCH)]
    return [pair for found in await asyncio.gather(*(one(b) for b in batches)) for pair in found], None


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
