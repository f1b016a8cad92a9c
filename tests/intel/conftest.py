"""A live server for the TAXII and MISP client libraries, and shared look-ups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kamiyo.db import Database
from tests.support.live import LiveServer


@pytest.fixture
def live(db_url: str) -> Iterator[LiveServer]:
    with LiveServer(db_url, KAMIYO_RATE_LIMITS="off") as server:
        yield server


async def touch(db_url: str, exploit_id: int, **values: Any) -> None:
    """Change one exploit as an ingest would (its facts, `updated_at` and the data version)."""
    from sqlalchemy import update

    from kamiyo.exploits.cache import bump_data_version
    from kamiyo.exploits.models import Exploit
    from kamiyo.kit.timeutil import utcnow

    db = Database(db_url)
    try:
        async with db.session() as session:
            await session.execute(update(Exploit).where(Exploit.id == exploit_id).values(updated_at=utcnow(), **values))
            await bump_data_version(session)
    finally:
        await db.dispose()
