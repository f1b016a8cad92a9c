"""A local Ethereum JSON-RPC endpoint on 127.0.0.1 answering with the spec's shapes (hex quantities,
`blockNumber`, `from`, `to`, receipt `status`), for the on-chain verification tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kamiyo.vocabulary.taxonomy import CHAINS
from tests.support.services import free_port


def only(**urls: str) -> str:
    """KAMIYO_RPC_URLS naming these endpoints and turning every other chain's public default off (no test may
    reach the internet)."""
    return json.dumps({slug: "" for slug, meta in CHAINS.items() if meta.family == "evm"} | urls)


@dataclass
class ChainState:
    """What the fake node knows. `txs` maps a tx hash to (block number, from, to, status or None)."""

    chain_id: int = 1
    txs: dict[str, tuple[int, str, str | None, int | None]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    block_times: dict[int, int] = field(default_factory=dict)
    fail_with: str | None = None  # "http500" | "rpc_error" | "garbage" | "slow"
    delay: float = 0.0
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


def _tx(state: ChainState, tx_hash: str) -> dict[str, Any] | None:
    if tx_hash in state.pending:
        return {"hash": tx_hash, "blockHash": None, "blockNumber": None, "from": "0x" + "99" * 20,
                "to": None, "nonce": "0x0", "value": "0x0", "input": "0x", "transactionIndex": None}  # fmt: skip
    if tx_hash not in state.txs:
        return None
    block, sender, to, _ = state.txs[tx_hash]
    return {
        "blockHash": "0x" + f"{block:064x}",
        "blockNumber": hex(block),
        "chainId": hex(state.chain_id),
        "from": sender,
        "gas": "0x2dc6c0",
        "gasPrice": "0x4a817c800",
        "hash": tx_hash,
        "input": "0x5cffe9de",
        "nonce": "0x1b",
        "to": to,
        "transactionIndex": "0x0",
        "type": "0x2",
        "value": "0x0",
        "v": "0x1",
        "r": "0x" + "1" * 64,
        "s": "0x" + "2" * 64,
    }


def _receipt(state: ChainState, tx_hash: str) -> dict[str, Any] | None:
    if tx_hash not in state.txs:
        return None
    block, sender, to, status = state.txs[tx_hash]
    receipt: dict[str, Any] = {
        "blockHash": "0x" + f"{block:064x}",
        "blockNumber": hex(block),
        "contractAddress": None if to else "0x" + "c0" * 20,
        "cumulativeGasUsed": "0x1e8480",
        "effectiveGasPrice": "0x4a817c800",
        "from": sender,
        "gasUsed": "0x1e8480",
        "logs": [],
        "logsBloom": "0x" + "0" * 512,
        "to": to,
        "transactionHash": tx_hash,
        "transactionIndex": "0x0",
        "type": "0x2",
    }
    if status is not None:
        receipt["status"] = hex(status)
    return receipt


def _block(state: ChainState, number: int) -> dict[str, Any] | None:
    if number not in state.block_times:
        return None
    return {
        "number": hex(number),
        "hash": "0x" + f"{number:064x}",
        "parentHash": "0x" + f"{number - 1:064x}",
        "timestamp": hex(state.block_times[number]),
        "miner": "0x" + "00" * 20,
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x1e8480",
        "baseFeePerGas": "0x7",
        "transactions": [h for h, tx in state.txs.items() if tx[0] == number],
    }


def _answer(state: ChainState, method: str, params: list[Any]) -> Any:
    if method == "eth_chainId":
        return hex(state.chain_id)
    if method == "eth_getTransactionByHash":
        return _tx(state, str(params[0]).lower())
    if method == "eth_getTransactionReceipt":
        return _receipt(state, str(params[0]).lower())
    if method == "eth_getBlockByNumber":
        return _block(state, int(params[0], 16))
    raise KeyError(method)


def _one(state: ChainState, payload: dict[str, Any]) -> dict[str, Any]:
    method, params = payload["method"], payload.get("params", [])
    state.calls.append((method, params))
    if state.fail_with == "rpc_error" and method != "eth_chainId":
        error = {"code": -32005, "message": "daily request count exceeded, request rate limited"}
        return {"jsonrpc": "2.0", "id": payload["id"], "error": error}
    try:
        return {"jsonrpc": "2.0", "id": payload["id"], "result": _answer(state, method, params)}
    except KeyError:
        error = {"code": -32601, "message": "the method does not exist/is not available"}
        return {"jsonrpc": "2.0", "id": payload["id"], "error": error}


def make_app(state: ChainState) -> web.Application:
    """Single calls and batches (a list of calls, answered in reverse order: ids, not positions, match them)."""

    async def rpc(request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        calls = payload if isinstance(payload, list) else [payload]
        chain_id_only = all(c["method"] == "eth_chainId" for c in calls)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay:
                await asyncio.sleep(state.delay)
            if state.fail_with == "slow" and not chain_id_only:
                # past the lookup timeout the test sets (0.3 s); the server's close waits it out
                await asyncio.sleep(1)
            if state.fail_with == "http500" and not chain_id_only:
                state.calls += [(c["method"], c.get("params", [])) for c in calls]
                return web.Response(status=500, text="upstream down")
            if state.fail_with == "garbage" and not chain_id_only:
                state.calls += [(c["method"], c.get("params", [])) for c in calls]
                return web.Response(text="<html>rate limited</html>", content_type="text/html")
            answers = [_one(state, c) for c in calls]
            return web.json_response(answers[::-1] if isinstance(payload, list) else answers[0])
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_post("/{tail:.*}", rpc)
    return app


@asynccontextmanager
async def rpc_server(state: ChainState) -> AsyncIterator[str]:
    """Serve `state` on a free loopback port; yields the base URL."""
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
