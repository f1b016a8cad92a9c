"""MCP tools over the public read API: the same services as the `/exploits`, `/stats` and `/sources` routes,
the same validation of filters, and the API's JSON as each answer (errors in the API's error shape).

Read-only: the tools only read; nothing here writes to the database or reaches the network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, TypeAdapter, WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo import __version__
from kamiyo.db import Database
from kamiyo.errors import KamiyoError, error_body
from kamiyo.exploits import service
from kamiyo.exploits.filters import SortKey
from kamiyo.exploits.router import exploit_filters
from kamiyo.exploits.schemas import CATEGORY_DOC, CHAIN_DOC, SourceOut
from kamiyo.exploits.stats import compute_stats
from kamiyo.ingest.health import list_sources
from kamiyo.kit.jsonresp import dumps
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

INSTRUCTIONS = (
    "Kamiyo: crypto and DeFi exploit incidents collected from public sources, one record per incident with every "
    "source's report. search_exploits lists incidents (newest first, filtered, paged); get_exploit gives one by id "
    "or transaction hash; exploit_stats sums losses over the last N days; list_sources shows where the data comes "
    "from. Amounts are USD; times are UTC ISO-8601."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_SOURCES = TypeAdapter(list[SourceOut])  # /sources answers through this response model
# The schema lists the slugs; the values are checked by the API's own filter parsing, so a wrong one gets the
# API's error (with the allowed values), not a different message from the protocol layer.
Chain = Annotated[str, WithJsonSchema({"type": "string", "enum": list(CHAINS)})]
Category = Annotated[str, WithJsonSchema({"type": "string", "enum": list(CATEGORIES)})]


def _result(data: Any) -> CallToolResult:
    text = dumps(data).decode()
    structured = orjson.loads(text) if isinstance(data, dict) else None
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _error(exc: KamiyoError) -> CallToolResult:
    text = dumps(error_body(exc.code, exc.message, exc.details)).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=None, is_error=True)


# Runs one read in a session of its own and turns the result (or a refusal) into a tool result.
Answer = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[CallToolResult]]


def build_server(db: Database) -> MCPServer:
    """The MCP server over `db`; the caller owns the database's lifetime."""
    server: MCPServer = MCPServer(
        "kamiyo", title="Kamiyo exploit intelligence", instructions=INSTRUCTIONS, version=__version__
    )

    async def answer(produce: Callable[[AsyncSession], Awaitable[Any]]) -> CallToolResult:
        try:
            async with db.session() as session:
                return _result(await produce(session))
        except KamiyoError as exc:  # invalid filters, unknown exploit: the API's 4xx body
            return _error(exc)

    _add_search(server, answer)
    _add_lookups(server, answer)
    return server


def _add_search(server: MCPServer, answer: Answer) -> None:
    @server.tool(annotations=READ_ONLY)
    async def search_exploits(
        chain: Annotated[
            list[Chain] | None, Field(description=f"Any of these chains (any chain an incident hit). {CHAIN_DOC}")
        ] = None,
        protocol: Annotated[str | None, Field(max_length=200, description="Exact protocol name, any case.")] = None,
        category: Annotated[
            list[Category] | None, Field(description=f"Any of these categories. {CATEGORY_DOC}")
        ] = None,
        min_amount: Annotated[float | None, Field(ge=0, le=1e13, description="Minimum loss in USD.")] = None,
        max_amount: Annotated[float | None, Field(ge=0, le=1e13, description="Maximum loss in USD.")] = None,
        since: Annotated[
            str | None, Field(max_length=64, description="Incidents at or after (ISO-8601 date or datetime, UTC).")
        ] = None,
        until: Annotated[
            str | None,
            Field(max_length=64, description="Incidents at or before (ISO-8601; a bare date includes that day)."),
        ] = None,
        source: Annotated[str | None, Field(max_length=64, description="Only incidents this source reported.")] = None,
        q: Annotated[
            str | None,
            Field(max_length=200, description="Words that start words of the incident's names or description."),
        ] = None,
        target_type: Annotated[
            list[str] | None,
            Field(max_length=20, description="Any of these target types: `defi`, `cefi`, `bridge`, ..."),
        ] = None,
        sort: Annotated[SortKey, Field(description="Order; unknown USD amounts sort as smallest.")] = "-timestamp",
        page: Annotated[int, Field(ge=1, le=100_000, description="Page number from 1.")] = 1,
        page_size: Annotated[int, Field(ge=1, le=500, description="Exploits per page.")] = 50,
        cursor: Annotated[
            str | None, Field(max_length=500, description="`next_cursor` of the previous page (deep paging).")
        ] = None,
    ) -> CallToolResult:
        """Exploits newest first (or by amount), filtered and paged: the JSON of GET /api/v1/exploits."""

        async def produce(session: AsyncSession) -> Any:
            filters = exploit_filters(
                chain=chain,
                category=category,
                protocol=protocol,
                min_amount=min_amount,
                max_amount=max_amount,
                since=since,
                until=until,
                source=source,
                q=q,
                target_type=target_type,
            )
            return await service.list_exploits(
                session, filters, sort=sort, page=page, page_size=page_size, cursor=cursor
            )

        return await answer(produce)


def _add_lookups(server: MCPServer, answer: Answer) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_exploit(
        ref: Annotated[
            str, Field(min_length=1, max_length=200, description="Exploit id, or a transaction hash (any case).")
        ],
    ) -> CallToolResult:
        """One exploit with every source's report: the JSON of GET /api/v1/exploits/{ref}."""
        return await answer(lambda session: service.get_exploit(session, ref))

    @server.tool(annotations=READ_ONLY)
    async def exploit_stats(
        days: Annotated[int, Field(ge=1, le=3650, description="Window length in days, ending now.")] = 7,
    ) -> CallToolResult:
        """Totals, breakdowns by chain and category, and a daily series: the JSON of GET /api/v1/stats."""
        return await answer(lambda session: compute_stats(session, days))

    @server.tool(name="list_sources", annotations=READ_ONLY)
    async def sources() -> CallToolResult:
        """The sources Kamiyo reads, with their health: the JSON of GET /api/v1/sources."""

        async def produce(session: AsyncSession) -> Any:
            return _SOURCES.dump_python(_SOURCES.validate_python(await list_sources(session)), mode="json")

        return await answer(produce)
