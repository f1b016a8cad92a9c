"""Shared by the submissions tests: a valid body, seeded exploits to duplicate, reading rows back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, ReportRow

NEW_TX = "0x" + "ab" * 32  # in no source: a missing incident


def body(**changes: Any) -> dict[str, Any]:
    """A valid submission of an incident Kamiyo does not know."""
    base: dict[str, Any] = {
        "tx_hash": NEW_TX,
        "chain": "ethereum",
        "protocol": "Quokka Vault",
        "amount_usd": 1_250_000,
        "timestamp": "2026-11-20T14:03:11Z",
        "category": "price_oracle",
        "description": "Spot-price oracle of the vault manipulated with a flash swap.",
        "attacker_address": "0x" + "12" * 20,
        "evidence_urls": ["https://example.org/post-mortem", "https://etherscan.io/tx/" + NEW_TX],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def seeded(database: Database, protocol: str) -> dict[str, Any]:
    async with database.session() as session:
        row = (await session.execute(select(Exploit).where(Exploit.protocol == protocol))).scalar_one()
        return {c.name: getattr(row, c.name) for c in Exploit.__table__.c}


async def public_count(database: Database) -> int:
    async with database.session() as session:
        stmt = select(func.count()).select_from(Exploit).where(Exploit.is_test.is_(False))
        return int((await session.execute(stmt)).scalar_one())


async def community_reports(database: Database) -> list[Any]:
    async with database.session() as session:
        rows = await session.execute(select(ReportRow).where(ReportRow.source == "community").order_by(ReportRow.id))
        return list(rows.scalars())
