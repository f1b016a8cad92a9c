"""The home overview cache (`kamiyo.web.queries.cached_overview`): per database, by data version, for a minute."""

from __future__ import annotations

import pytest
from cachetools import TTLCache

from kamiyo.db import Database
from kamiyo.web import queries


async def test_an_overview_is_reused_within_its_minute_and_recomputed_after(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(queries, "_overviews", TTLCache(maxsize=16, ttl=queries.OVERVIEW_TTL_S, timer=lambda: now[0]))
    async with database.session() as session:
        first = await queries.cached_overview(session)
        now[0] += queries.OVERVIEW_TTL_S - 1
        assert await queries.cached_overview(session) is first  # same data version, same minute
        now[0] += 2
        again = await queries.cached_overview(session)
    assert again is not first and again == first  # expired: computed anew, with the same figures
