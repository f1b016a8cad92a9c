"""Reading EVM chains over JSON-RPC: transactions, their receipts and block times, from each chain's endpoint.

Network only, no database: `kamiyo.enrich.onchain` picks what to ask and records the answers. Batches of
BATCH calls, CONCURRENCY requests in flight over all chains; an endpoint that is not its chain (`eth_chainId`)
is skipped. URLs (which often carry an API key) never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from kamiyo.config import Settings
from kamiyo.vocabulary.normalise import CHAIN_IDS
from kamiyo.vocabulary.taxonomy import CHAINS

log = logging.getLogger(__name__)
CONCURRENCY = 8  # requests in flight at once, over all chains
BATCH = 50  # calls per JSON-RPC batch request (public endpoints commonly accept 50 to 100)
Block = tuple[str, int]  # (chain, number)
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
