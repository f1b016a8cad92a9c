"""`kamiyo mcp` spawned as a real process against seeded SQLite and PostgreSQL, driven by the official MCP client
over stdio and over streamable HTTP; every answer must be the public API's JSON for the same question."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult

from tests.support.services import free_port, wait_for_port

pytestmark = pytest.mark.reads_seed  # every test here only reads the seeded database

KAMIYO = str(Path(sys.executable).with_name("kamiyo"))
TOOLS = {"search_exploits", "get_exploit", "exploit_stats", "list_sources"}


def _env(db_url: str) -> dict[str, str]:
    return {"KAMIYO_DATABASE_URL": db_url, "KAMIYO_OFFLINE": "1", "KAMIYO_LOG_LEVEL": "DEBUG"}  # chatty on stderr


def _json(result: CallToolResult) -> Any:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return json.loads(result.content[0].text)


async def _agrees_with_api(mcp: Client, api: httpx.AsyncClient) -> None:
    """The four tools, checked against the API's answers to the same questions."""
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == TOOLS
    search = tools["search_exploits"].input_schema["properties"]
    assert {"chain", "protocol", "category", "min_amount", "max_amount", "since", "until", "source", "q"} <= set(search)
    assert {"sort", "page", "page_size", "cursor", "target_type"} <= set(search)
    assert search["page_size"]["maximum"] == 500 and "-amount_usd" in json.dumps(search["sort"])
    assert "ethereum" in json.dumps(search["chain"]) and "flash_loan" in json.dumps(search["category"])  # enums
    assert tools["get_exploit"].input_schema["required"] == ["ref"]
    assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools.values())

    args = {"chain": ["ethereum"], "min_amount": 1_000_000, "sort": "-amount_usd", "page_size": 7}
    result = await mcp.call_tool("search_exploits", args)
    assert not result.is_error
    page = _json(result)
    api_page = (await api.get("/api/v1/exploits?chain=ethereum&min_amount=1000000&sort=-amount_usd&page_size=7")).json()
    assert page == api_page and len(page["data"]) == 7
    assert result.structured_content == page
    amounts = [row["amount_usd"] for row in page["data"]]
    assert amounts == sorted(amounts, reverse=True) and all(row["chain"] == "ethereum" for row in page["data"])

    deeper = _json(await mcp.call_tool("search_exploits", {**args, "cursor": page["next_cursor"]}))
    api_deeper = (await api.get(f"/api/v1/exploits?chain=ethereum&min_amount=1000000&sort=-amount_usd&page_size=7"
                                f"&cursor={page['next_cursor']}")).json()  # fmt: skip
    assert deeper == api_deeper and deeper["data"][0]["id"] != page["data"][0]["id"]

    first = next(row for row in page["data"] if row["tx_hash"])
    by_hash = _json(await mcp.call_tool("get_exploit", {"ref": first["tx_hash"].upper().replace("0X", "0x")}))
    assert by_hash == (await api.get(f"/api/v1/exploits/{first['id']}")).json()
    assert _json(await mcp.call_tool("get_exploit", {"ref": str(first["id"])}))["id"] == first["id"]

    stats = _json(await mcp.call_tool("exploit_stats", {"days": 3650}))
    api_stats = (await api.get("/api/v1/stats?days=3650")).json()
    assert stats.pop("since") <= api_stats.pop("since")  # the window ends at each call's own "now"
    assert stats == api_stats and stats["total_exploits"] > 100
    assert _json(await mcp.call_tool("list_sources", {})) == (await api.get("/api/v1/sources")).json()

    missing = await mcp.call_tool("get_exploit", {"ref": "987654321"})
    assert missing.is_error and _json(missing) == (await api.get("/api/v1/exploits/987654321")).json()
    assert _json(missing)["error"]["code"] == "not_found"
    bad_chain = await mcp.call_tool("search_exploits", {"chain": ["notachain"]})
    assert bad_chain.is_error and _json(bad_chain) == (await api.get("/api/v1/exploits?chain=notachain")).json()
    bad_target = await mcp.call_tool("search_exploits", {"target_type": ["<b>"]})
    assert bad_target.is_error and _json(bad_target) == (await api.get("/api/v1/exploits?target_type=%3Cb%3E")).json()
    typed = _json(await mcp.call_tool("search_exploits", {"target_type": ["bridge", "cefi"], "chain": ["ethereum"]}))
    assert typed == (await api.get("/api/v1/exploits?target_type=bridge,cefi&chain=ethereum")).json()
    bad_range = await mcp.call_tool("search_exploits", {"min_amount": 10, "max_amount": 5})
    assert bad_range.is_error and _json(bad_range)["error"]["code"] == "invalid"
    too_big = await mcp.call_tool("search_exploits", {"page_size": 501})
    assert too_big.is_error and "page_size" in too_big.content[0].text


async def test_stdio(db_url: str, client: httpx.AsyncClient, tmp_path: Path) -> None:
    params = StdioServerParameters(command=KAMIYO, args=["mcp"], env=_env(db_url), cwd=tmp_path)
    async with asyncio.timeout(60), Client(params, read_timeout_seconds=30) as mcp:
        assert mcp.server_info is not None and mcp.server_info.name == "kamiyo"
        await _agrees_with_api(mcp, client)


@pytest.fixture
def http_server_process(db_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [KAMIYO, "mcp", "--http", str(port)],
        env={**os.environ, **_env(db_url)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=30)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


async def test_streamable_http(http_server_process: int, client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(60), Client(f"http://127.0.0.1:{http_server_process}/mcp") as mcp:
        await _agrees_with_api(mcp, client)
