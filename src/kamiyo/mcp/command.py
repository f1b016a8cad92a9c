"""`kamiyo mcp [--http PORT]`: serve the MCP tools over stdio (for a desktop assistant) or streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from kamiyo.cli_support import console, run
from kamiyo.config import get_settings, is_loopback_host


def mcp_command(
    http: Annotated[
        int | None,
        typer.Option("--http", min=1, max=65535, metavar="PORT", help="Serve streamable HTTP on this port at /mcp."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface for --http.")] = "127.0.0.1",
) -> None:
    """Model Context Protocol server (read-only tools over the exploit data): stdio, or --http PORT."""
    from kamiyo.db import Database
    from kamiyo.logging_setup import configure_logging
    from kamiyo.mcp.server import build_server
    from kamiyo.ops.reporting import init_error_reporting

    settings = get_settings()
    configure_logging(settings.log_level)  # on stderr, redacted: on stdio, standard output is the protocol's
    init_error_reporting(settings)
    db = Database(settings.database_url)
    server = build_server(db)

    async def serve() -> None:
        try:
            if http is None:
                await server.run_stdio_async()  # standard output carries the protocol: messages go to stderr
            else:
                console.print(f"MCP over streamable HTTP at http://{host}:{http}/mcp", highlight=False)
                await server.run_streamable_http_async(host=host, port=http)
        finally:
            await db.dispose()

    if http is not None and not is_loopback_host(host):
        console.print("[yellow]the MCP endpoint has no authentication; it answers anyone who can reach it")
    run(serve())
