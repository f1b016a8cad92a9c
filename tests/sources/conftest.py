"""Fixtures of the source tests: the loopback fixture server (one per module) and the shared HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kamiyo.sources.http import new_client
from tests.sources.fixture_server import FixtureServer, fixture_server


@pytest.fixture(scope="module")
def server() -> Iterator[FixtureServer]:
    with fixture_server() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as client:
        yield client
