"""A real `uvicorn` server on a seeded SQLite copy, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.services import free_port, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
LIVE_DATABASES: dict[str, str] = {}  # live server base URL -> its database URL (tests add users there)
WIDTHS = {"desktop": (1440, 900), "phone": (375, 812)}


def chromium_missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return "Chromium is not installed at /usr/bin/chromium (Debian package `chromium`; .ci/run installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (dev extra)"
    return None


@pytest.fixture(scope="module")
def live_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`uvicorn` in a subprocess on a free loopback port, serving a private copy of the seeded database."""
    workdir = tmp_path_factory.mktemp("live")
    db = workdir / "kamiyo.db"
    shutil.copyfile(sqlite_template, db)
    port = free_port()
    env = dict(
        os.environ,
        KAMIYO_DATABASE_URL=f"sqlite:///{db}",
        KAMIYO_DATA_DIR=str(workdir / "data"),
        KAMIYO_OFFLINE="1",
        KAMIYO_SEED="0",
        KAMIYO_ANON_RATE_LIMIT="100000/minute",
        KAMIYO_LOG_LEVEL="WARNING",
        KAMIYO_ALLOW_HTTP_WEBHOOKS="1",  # webhooks to a receiver on 127.0.0.1 (test_browser's team journey)
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "kamiyo.app:create_app", "--host", "127.0.0.1"]
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        LIVE_DATABASES[base] = env["KAMIYO_DATABASE_URL"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/ping", timeout=2).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page plus every console error, failed request and HTTP error it met."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.failed == [], self.failed


def watch(page: Any) -> Watched:
    watched = Watched(page)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            watched.console_errors.append(msg.text)

    def on_response(response: Any) -> None:
        if response.status >= 400:
            watched.failed.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.console_errors.append(str(exc)))
    page.on("requestfailed", lambda request: watched.failed.append(f"failed {request.url} {request.failure}"))
    page.on("response", on_response)
    page.set_default_timeout(15_000)
    return watched


@pytest.fixture
def tab(browser: Any) -> Iterator[Watched]:
    """A fresh desktop-sized page; tests resize it for the phone view."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, service_workers="block")
    page = context.new_page()
    yield watch(page)
    context.close()
