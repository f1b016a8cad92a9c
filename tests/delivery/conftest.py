"""Fixtures of the delivery tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kamiyo.db import Database


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The test's database, opened for the test and disposed after it."""
    database = Database(db_url)
    yield database
    await database.dispose()
