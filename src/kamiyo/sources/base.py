"""What a source produces: reports, one per incident as that source describes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Report:
    """One source's account of one incident, already normalised to Kamiyo's vocabulary.

    `source_ref` is the source's own stable identifier for the incident (an id, a URL, or a
    derived key) so that fetching the same feed twice updates rather than duplicates.
    """

    source: str
    source_ref: str
    protocol: str
    timestamp: datetime
    chain: str | None = None
    tx_hash: str | None = None
    tx_hashes: tuple[str, ...] = ()
    amount_usd: float | None = None
    amount_text: str | None = None
    recovered_usd: float | None = None
    category: str | None = None
    description: str | None = None
    attacker_address: str | None = None
    url: str | None = None
    references: tuple[str, ...] = ()
    reported_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What Kamiyo shows about a source; the fetch side (issue: aggregation) extends this."""

    name: str
    title: str
    url: str
    kind: str  # json | html | rss | markdown | graphql | dataset
    cadence_seconds: int = 3600
    needs_key: str | None = None  # name of the setting that must be present, if any
