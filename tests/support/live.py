"""The app under a real uvicorn server on 127.0.0.1, for clients that speak HTTP themselves (TAXII and MISP
libraries, schemathesis), and a cursor walk over the public listing."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import uvicorn

from tests.support.app import make_settings
from tests.support.services import free_port


class LiveServer:
    def __init__(self, db_url: str, *, access_log: bool = True, **env: Any) -> None:
        from kamiyo.app import create_app

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        settings = make_settings(db_url, KAMIYO_PUBLIC_URL=self.base_url, KAMIYO_SECRET_KEY="x" * 48, **env)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_config=None, access_log=access_log
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def all_exploits(client: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    """Every public exploit through the public API (cursor walk)."""
    rows: list[dict[str, Any]] = []
    url = f"/exploits?page_size=500{query}"
    body = (await client.get(url)).json()
    rows += body["data"]
    while body["next_cursor"]:
        body = (await client.get(f"{url}&cursor={body['next_cursor']}")).json()
        rows += body["data"]
    return rows
