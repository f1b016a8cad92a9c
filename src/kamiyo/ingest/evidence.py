"""What Kamiyo found beside the sources' words, for deriving records: the attack transaction's block time
(read over JSON-RPC by the on-chain job) and the USD price of stated token amounts (the price job).

Both are kept in their own tables and read here for the records being derived, so a record stays a
function of its reports, its corrections and this evidence: re-deriving never loses a block time or a price.
Offline, both are empty and records keep the day their sources state and amounts stay unpriced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Evidence:
    # attack tx hash (as stored) -> the time of the block that holds it
    block_times: Mapping[str, datetime] = field(default_factory=dict)
    # (price API coin id, day) -> that day's USD price
    prices: Mapping[tuple[str, date], float] = field(default_factory=dict)


NONE = Evidence()


async def load_evidence(session: AsyncSession, reports: Mapping[int, Sequence[Any]]) -> dict[int, Evidence]:
    """The evidence for each exploit id in `reports` (its report rows, as `derive` reads them)."""
    return {}
