"""`kamiyo import`: JSON, JSONL or CSV rows in the exploit shape, turned into reports and stored.

A row is one incident: its reports (one per entry of `sources`, or one `import` report) stay together,
join a stored incident only by a report it already has or by tx hash, never by the fuzzy rule, and leave
stored reports as they are. A row from `kamiyo export` carries each source's own report (`sources[]` in
JSON, the `source_reports` column in CSV) with its `ref`, so export then import changes nothing, and into
an empty database gives the same records. Idempotent: reports have deterministic (source, source_ref) keys.
Bad rows are skipped with their line number, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from kamiyo.kit.timeutil import parse_when
from kamiyo.sources.base import Report
from kamiyo.vocabulary.normalise import (
    normalise_address,
    normalise_category,
    normalise_chain,
    normalise_tx_hash,
    protocol_key,
)

IMPORT_SOURCE = "import"
# Chain and category columns repeat a few spellings over millions of rows: normalise each spelling once.
_cached_chain = lru_cache(maxsize=4096)(normalise_chain)
_cached_category = lru_cache(maxsize=4096)(normalise_category)


class RowError(ValueError):
    pass


@dataclass
class ImportProblems:
    errors: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append((line, message))


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line or index, row) pairs; a row that is not an object comes back as None."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, {k: v for k, v in row.items() if k and v not in (None, "")}
        return
    if suffix in {".jsonl", ".ndjson"}:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, _object_or_none(line)
        return
    document = orjson.loads(path.read_bytes())
    items = document.get("data", document) if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise RowError("a JSON import must be a list of exploits (or an object with a `data` list)")
    for number, item in enumerate(items, start=1):
        yield number, item if isinstance(item, dict) else None


def _object_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _float(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise RowError(f"{key}: not a number") from exc
    if not 0 <= number < 1e13:
        raise RowError(f"{key}: out of range")
    return number


def _when(value: Any, key: str) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return parse_when(str(value))
    except ValueError as exc:
        raise RowError(f"{key}: not an ISO-8601 date or datetime") from exc


def _source_entries(row: dict[str, Any]) -> list[dict[str, Any]]:
    detailed = row.get("source_reports")
    if isinstance(detailed, str) and detailed.strip().startswith("["):
        try:
            decoded = orjson.loads(detailed)
        except orjson.JSONDecodeError as exc:
            raise RowError("source_reports: not a JSON list") from exc
        if isinstance(decoded, list):
            return [s for s in decoded if isinstance(s, dict)]
    sources = row.get("sources")
    if isinstance(sources, str):
        return [{"source": name.strip()} for name in sources.split(";") if name.strip()]
    if isinstance(sources, list):
        return [s if isinstance(s, dict) else {"source": str(s)} for s in sources if s]
    return [{"source": str(row.get("source") or IMPORT_SOURCE)}]


def _chain(value: Any) -> str | None:
    return _cached_chain(value) if isinstance(value, str) else normalise_chain(value)


def _category(value: Any) -> str:
    return _cached_category(value) if isinstance(value, str) else normalise_category(value)


def _own_facts(entry: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """The row's facts with what this source itself stated (an exported `sources[]` item) in their place."""
    own = dict(facts)
    if entry.get("protocol"):
        own["protocol"] = str(entry["protocol"]).strip()[:200] or facts["protocol"]
    if entry.get("timestamp"):
        own["timestamp"] = _when(entry["timestamp"], "sources.timestamp")
    if "chain" in entry:
        own["chain"] = _chain(entry["chain"]) if entry["chain"] else None
    if "tx_hash" in entry:
        tx = entry["tx_hash"]
        own["tx_hash"] = normalise_tx_hash(tx, own["chain"] or facts["chain"]) if tx else None
    for key, target in (("amount_usd", "amount_usd"), ("returned_usd", "recovered_usd")):
        if key in entry:
            own[target] = _float(entry, key)
    if "amount_text" in entry:
        own["amount_text"] = str(entry["amount_text"])[:500] if entry["amount_text"] else None
    if isinstance(entry.get("details"), dict):
        own.update(_details(entry["details"]))
    return own


def _strings(value: Any, limit: int = 200) -> tuple[str, ...]:
    items = value if isinstance(value, list) else []
    return tuple(dict.fromkeys(str(v).strip()[:limit] for v in items[:100] if isinstance(v, str) and v.strip()))


def _text(value: Any, limit: int) -> str | None:
    return str(value).strip()[:limit] or None if isinstance(value, str) else None


def _details(details: dict[str, Any]) -> dict[str, Any]:
    """An exported source's further facts (`sources[].details`) as Report fields, normalised again (an import
    file is input like any other): unknown chains and malformed hashes are left out."""
    chains = tuple(dict.fromkeys(c for c in map(_chain, _strings(details.get("chains"), 64)) if c))
    hashes = (normalise_tx_hash(tx) for tx in _strings(details.get("tx_hashes"), 128))  # any chain of `chains`
    fork = details.get("fork_block")
    fork_block = None
    if isinstance(fork, list) and len(fork) == 2 and isinstance(fork[1], int) and (fork_chain := _chain(fork[0])):
        fork_block = (fork_chain, fork[1])
    return {
        "chains": chains,
        "tx_hashes": tuple(dict.fromkeys(h for h in hashes if h)),
        "technique": _text(details.get("technique"), 200),
        "classification": _text(details.get("classification"), 200),
        "target_type": _text(details.get("target_type"), 32),
        "attack_contracts": _strings(details.get("attack_contracts"), 128),
        "vulnerable_contracts": _strings(details.get("vulnerable_contracts"), 128),
        "references": _strings(details.get("links"), 1000),
        "fork_block": fork_block,
    }


def row_to_reports(row: dict[str, Any], incident: str | None = None) -> list[Report]:
    protocol = str(row.get("protocol") or "").strip()
    if not protocol:
        raise RowError("protocol: required")
    if "timestamp" not in row:
        raise RowError("timestamp: required")
    timestamp = _when(row["timestamp"], "timestamp")
    chain = _chain(row.get("chain")) or "other"
    tx_hash = normalise_tx_hash(row.get("tx_hash"), chain) if row.get("tx_hash") else None
    if row.get("tx_hash") and tx_hash is None:
        raise RowError("tx_hash: not a transaction hash for this chain")
    identity = tx_hash or f"{protocol_key(protocol)}|{timestamp.date().isoformat()}|{chain}"
    facts: dict[str, Any] = {
        "protocol": protocol[:200],
        "timestamp": timestamp,
        "chain": chain,
        "tx_hash": tx_hash,
        "amount_usd": _float(row, "amount_usd"),
        "recovered_usd": _float(row, "recovered_usd"),
        "amount_text": str(row["amount_text"])[:500] if row.get("amount_text") else None,
        "category": _category(row.get("category")),
        "description": str(row.get("description") or "")[:5000] or None,
        "attacker_address": normalise_address(row.get("attacker_address")),
    }
    reports: dict[str, Report] = {}
    for entry in _source_entries(row):
        source = str(entry.get("source") or IMPORT_SOURCE).strip().lower()[:64]
        url = entry.get("url") or None
        ref = str(entry.get("ref") or "") or url or (identity if source == IMPORT_SOURCE else f"import:{identity}")
        reported = _when(entry["reported_at"], "sources.reported_at") if entry.get("reported_at") else None
        if len(ref) > 500:
            ref = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        reports.setdefault(  # a source lists one incident once: its first entry in the row counts
            source,
            Report(
                source=source, source_ref=ref, url=url, reported_at=reported, raw={"import": True},
                incident=incident or identity, **_own_facts(entry, facts),
            ),
        )  # fmt: skip
    return list(reports.values())


def iter_reports(path: Path, problems: ImportProblems) -> Iterator[Report]:
    for number, row in read_rows(path):
        if row is None:
            problems.add(number, "not a JSON object")
            continue
        try:
            yield from row_to_reports(row, incident=f"row:{number}")
        except RowError as exc:
            problems.add(number, str(exc))
