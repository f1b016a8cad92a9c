"""How an exploit's facts are derived from its reports.

Rule (documented in the README): reports are ranked by source trust, then by when they were
reported. The most trusted report that states a fact gives it (tx hash, protocol, category,
description, attacker), the chain is the most common one stated, the USD loss is the median of
the stated amounts, and the incident time is the most trusted precise time (not midnight), else the
earliest date. Material facts, whose change emits `exploit.updated`: amount, chain, tx hash.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from kamiyo.ingest.normalise import protocol_key
from kamiyo.taxonomy import CHAINS

MATERIAL_FACTS = ("amount_usd", "chain", "tx_hash")
DERIVED_FIELDS = (
    "tx_hash", "chain", "protocol", "protocol_key", "amount_usd", "amount_sort", "amount_text", "recovered_usd",
    "timestamp", "category", "description", "attacker_address", "explorer_url", "is_test",
)  # fmt: skip

# Higher is more trusted for exact on-chain facts. Unknown sources get DEFAULT_TRUST.
SOURCE_TRUST: dict[str, int] = {
    "defihacklabs": 90,
    "defihack_chronicle": 85,
    "community": 40,
    "import": 60,
}
DEFAULT_TRUST = 50


class ReportFacts(Protocol):
    source: str
    protocol: str
    timestamp: datetime
    chain: str | None
    tx_hash: str | None
    amount_usd: float | None
    amount_text: str | None
    recovered_usd: float | None
    category: str | None
    description: str | None
    attacker_address: str | None


def _trust(report: ReportFacts) -> int:
    return SOURCE_TRUST.get(report.source, DEFAULT_TRUST)


def explorer_url(chain: str, tx_hash: str | None) -> str | None:
    meta = CHAINS.get(chain)
    if not tx_hash or meta is None or meta.explorer is None:
        return None
    return f"{meta.explorer}/tx/{tx_hash}"


def _first(ranked: Sequence[ReportFacts], attr: str) -> Any:
    for report in ranked:
        value = getattr(report, attr)
        if value not in (None, "", "other"):
            return value
    return None


def _is_precise(ts: datetime) -> bool:
    return (ts.hour, ts.minute, ts.second) != (0, 0, 0)


def derive(reports: Sequence[ReportFacts]) -> dict[str, Any]:
    """The exploit row's facts from all reports of one incident."""
    ranked = sorted(reports, key=lambda r: -_trust(r))
    chains = Counter(r.chain for r in ranked if r.chain and r.chain != "other")
    # most_common is stable, so ties go to the chain of the most trusted report.
    chain = chains.most_common(1)[0][0] if chains else "other"
    amounts = [r.amount_usd for r in ranked if r.amount_usd is not None]
    amount = float(statistics.median(amounts)) if amounts else None
    recovered = [r.recovered_usd for r in ranked if r.recovered_usd is not None]
    precise = [r.timestamp for r in ranked if _is_precise(r.timestamp)]
    timestamp = precise[0] if precise else min(r.timestamp for r in ranked)
    protocol = ranked[0].protocol
    tx_hash = _first(ranked, "tx_hash")
    return {
        "tx_hash": tx_hash,
        "chain": chain,
        "protocol": protocol,
        "protocol_key": protocol_key(protocol),
        "amount_usd": amount,
        "amount_sort": amount if amount is not None else -1.0,
        "amount_text": _first(ranked, "amount_text"),
        "recovered_usd": max(recovered) if recovered else None,
        "timestamp": timestamp,
        "category": _first(ranked, "category") or "other",
        "description": _first(ranked, "description") or "",
        "attacker_address": _first(ranked, "attacker_address"),
        "explorer_url": explorer_url(chain, tx_hash),
        "is_test": protocol_key(protocol) == "test",
    }


def material_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), after.get(k)] for k in MATERIAL_FACTS if before.get(k) != after.get(k)}
