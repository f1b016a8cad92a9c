"""Exploits as a MISP feed: a manifest of every event, and one event per exploit.

The event UUID is the exploit's incident UUID (see `ids`), so it is the same in every Kamiyo database
and across re-fetches. Tags use the `kamiyo` machine-tag taxonomy: `kamiyo:category="<category slug>"`,
`kamiyo:chain="<chain slug>"`, `kamiyo:loss-kind="realised|nominal"`, beside `tlp:clear`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson

from kamiyo.intel import ids
from kamiyo.intel.keys import keyed_batches

ORG = {"name": "Kamiyo", "uuid": str(ids.named("misp:org"))}
TLP = "tlp:clear"
# MISP threat levels: 1 high, 2 medium, 3 low, 4 undefined; by the USD loss.
HIGH_USD = 10_000_000
MEDIUM_USD = 1_000_000


def tags(chain: str, category: str, loss_kind: str) -> list[dict[str, str]]:
    return [
        {"name": TLP},
        {"name": f'kamiyo:category="{category}"'},
        {"name": f'kamiyo:chain="{chain}"'},
        {"name": f'kamiyo:loss-kind="{loss_kind}"'},
    ]


def threat_level(amount_usd: float | None) -> str:
    if amount_usd is None:
        return "4"
    return "1" if amount_usd >= HIGH_USD else "2" if amount_usd >= MEDIUM_USD else "3"


def info(protocol: str, chain: str, amount_usd: float | None) -> str:
    loss = f", ${amount_usd:,.0f} lost" if amount_usd is not None else ""
    return f"{protocol} exploit on {chain}{loss}"


def _epoch(value: datetime) -> str:
    return str(int(value.astimezone(UTC).timestamp()))


def manifest_entry(row: Any) -> dict[str, Any]:
    return {
        "info": info(row.protocol, row.chain, row.amount_usd),
        "date": row.timestamp.astimezone(UTC).date().isoformat(),
        "threat_level_id": threat_level(row.amount_usd),
        "analysis": "2",
        "timestamp": _epoch(row.updated_at),
        "Orgc": ORG,
        "Tag": tags(row.chain, row.category, row.loss_kind),
    }


async def manifest_chunks(session: Any) -> AsyncIterator[bytes]:
    """`{uuid: entry, …}` over every public exploit, one batch of exploits per chunk."""
    yield b"{"
    first = True
    async for batch in keyed_batches(session):
        parts = [b'"' + ids.text(item.uuid).encode() + b'":' + orjson.dumps(manifest_entry(item.row)) for item in batch]
        if parts:
            yield (b"" if first else b",") + b",".join(parts)
            first = False
    yield b"}"


def event(exploit: dict[str, Any], event_uuid: uuid.UUID) -> dict[str, Any]:
    """The MISP event of one exploit (as `GET /exploits/{ref}` gives it)."""
    updated = datetime.fromisoformat(exploit["updated_at"].replace("Z", "+00:00"))
    stamp = _epoch(updated)
    attributes: list[dict[str, Any]] = []

    def add(kind: str, category: str, value: Any, comment: str, *, to_ids: bool = False) -> None:
        attributes.append(
            {
                "uuid": str(uuid.uuid5(event_uuid, f"{kind}|{comment}|{value}")),
                "type": kind,
                "category": category,
                "value": str(value),
                "to_ids": to_ids,
                "comment": comment,
                "timestamp": stamp,
                "distribution": "5",
            }
        )

    hashes = [exploit["tx_hash"]] if exploit["tx_hash"] else []
    hashes += [s["tx_hash"] for s in exploit["sources"] if s.get("tx_hash")]
    for tx in dict.fromkeys(hashes):
        add("text", "Financial fraud", tx, "transaction hash")
    if exploit["attacker_address"]:
        kind = "btc" if exploit["chain"] == "bitcoin" else "text"
        add(kind, "Financial fraud", exploit["attacker_address"], "attacker address", to_ids=True)
    add("text", "Other", exploit["chain"], "chain")
    add("text", "Other", exploit["protocol"], "protocol")
    if exploit["amount_usd"] is not None:
        add("float", "Other", exploit["amount_usd"], f"loss in USD ({exploit['loss_kind']})")
    if exploit["recovered_usd"] is not None:
        add("float", "Other", exploit["recovered_usd"], "recovered in USD")
    links = [(s["source"], s["url"]) for s in exploit["sources"] if s["url"]]
    if exploit["explorer_url"]:
        links.append(("explorer", exploit["explorer_url"]))
    for name, url in dict.fromkeys(links):
        add("link", "External analysis", url, name)
    incident_time = datetime.fromisoformat(exploit["timestamp"].replace("Z", "+00:00"))
    return {
        "Event": {
            "uuid": str(event_uuid),
            "info": info(exploit["protocol"], exploit["chain"], exploit["amount_usd"]),
            "date": incident_time.date().isoformat(),
            "threat_level_id": threat_level(exploit["amount_usd"]),
            "analysis": "2",
            "distribution": "3",
            "published": True,
            "timestamp": stamp,
            "publish_timestamp": stamp,
            "Orgc": ORG,
            "Tag": tags(exploit["chain"], exploit["category"], exploit["loss_kind"]),
            "Attribute": attributes,
        }
    }
