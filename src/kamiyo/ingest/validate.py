"""Checks every parsed report passes before it is stored, whatever source it came from.

`problems()` lists what makes a report unusable (the contract test asserts there are none);
`clean()` drops such reports and trims over-long text to the column sizes, so one odd item never
fails a whole source's transaction.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from kamiyo.vocabulary.normalise import normalise_tx_hash
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)  # the Bitcoin genesis block
LIMITS = {"source_ref": 512, "protocol": 200, "url": 1000, "amount_text": 500, "attacker_address": 128}


def problems(report: Report, source: str | None = None, now: datetime | None = None) -> list[str]:
    """Why `report` cannot be stored as is (empty when it can)."""
    now = now or utcnow()
    found: list[str] = []
    if source is not None and report.source != source:
        found.append(f"source is {report.source!r}, expected {source!r}")
    if not report.source_ref.strip():
        found.append("empty source_ref")
    if not report.protocol.strip():
        found.append("empty protocol")
    ts = report.timestamp
    if ts.tzinfo is None or ts.utcoffset() != timedelta(0):
        found.append("timestamp is not UTC-aware")
    elif not EARLIEST <= ts <= now + timedelta(days=2):
        found.append(f"timestamp {ts.isoformat()} out of range")
    for chain in {report.chain, *report.chains} - {None}:
        if chain not in CHAINS:
            found.append(f"unknown chain {chain!r}")
    if report.category is not None and report.category not in CATEGORIES:
        found.append(f"unknown category {report.category!r}")
    if report.tx_hash is not None and normalise_tx_hash(report.tx_hash, report.chain) != report.tx_hash:
        found.append(f"invalid tx hash {report.tx_hash!r} for chain {report.chain}")
    for tx in report.tx_hashes:  # an incident on several chains has transactions on each
        if all(normalise_tx_hash(tx, chain) != tx for chain in (report.chain, *report.chains)):
            found.append(f"invalid tx hash {tx!r} for chains {', '.join(filter(None, (report.chain, *report.chains)))}")
    if report.tx_hashes and report.tx_hash not in report.tx_hashes:
        found.append("tx_hash is not among tx_hashes")
    for name in ("amount_usd", "recovered_usd"):
        value = getattr(report, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            found.append(f"{name} {value} is not a finite non-negative number")
    return found


def clean(report: Report, now: datetime | None = None) -> Report | None:
    """The report trimmed to column sizes, or None if it has a problem that trimming cannot fix."""
    if problems(report, now=now):
        return None
    trims: dict[str, Any] = {
        name: value[:limit]
        for name, limit in LIMITS.items()
        if isinstance(value := getattr(report, name), str) and len(value) > limit
    }
    return replace(report, **trims) if trims else report
