"""Exploits as STIX 2.1 objects (plain dicts, serialised as they are: no per-object library round trip).

Per exploit: an `incident` (Kamiyo's facts that STIX has no property for travel in a property extension,
declared by one `extension-definition`), an `indicator` for the attacker address (pattern
`[cryptocurrency-wallet:value = '…']`, a custom cyber-observable object path, as the patterning
grammar allows and OpenCTI uses), an `indicates` relationship from it to the incident, and a `related-to`
relationship from the incident to the `identity` of each source that reported it. Everything is
`created_by_ref` Kamiyo's own identity. `created`/`modified` are the record's `first_seen_at`/`updated_at`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from kamiyo.intel import ids
from kamiyo.sources import REGISTRY

SPEC = "2.1"
MEDIA_TYPE = "application/stix+json;version=2.1"
EPOCH = "2020-01-01T00:00:00.000Z"  # created/modified of the fixed objects (they never change)
KAMIYO_IDENTITY = f"identity--{ids.named('kamiyo')}"
EXTENSION_ID = f"extension-definition--{ids.named('extension:exploit')}"
# What each property of the extension holds (the extension definition's `schema`, as plain text).
EXTENSION_PROPERTIES = {
    "chain": "canonical chain slug (ethereum, bsc, arbitrum, solana, …)",
    "protocol": "the exploited protocol's name",
    "category": "canonical category slug (flash_loan, price_oracle, reentrancy, …)",
    "loss_kind": "realised, or nominal (a figure that is not an actual loss)",
    "amount_usd": "loss in USD (number)",
    "amount_text": "the loss as the source wrote it",
    "recovered_usd": "USD given back, frozen or seized (number)",
    "returned_usd": "the same figure as recovered_usd",
    "tx_hashes": "transaction hashes of the incident: the primary one first, then any other a source gave",
    "attacker_address": "the attacker's address",
    "incident_time": "when the incident happened (UTC)",
    "disputed": "sources disagree on the facts (boolean)",
    "verified_on_chain": "the primary transaction was checked on chain (boolean)",
    "explorer_url": "the primary transaction in a block explorer",
}
SCHEMA_TEXT = "Kamiyo exploit facts on an incident, each optional: " + "; ".join(
    f"{name}: {meaning}" for name, meaning in EXTENSION_PROPERTIES.items()
)


def stix_time(value: str | None) -> str:
    """A record timestamp (`iso()` text) at STIX's millisecond precision."""
    if not value:
        return EPOCH
    body = value[:-1] if value.endswith("Z") else value
    if "." in body:
        head, _, frac = body.partition(".")
        return f"{head}.{(frac + '000')[:3]}Z"
    return f"{body}.000Z"


@functools.cache
def source_identity_id(source: str) -> str:
    return f"identity--{ids.named('source:' + source)}"


def kamiyo_identity() -> dict[str, Any]:
    return {
        "type": "identity",
        "spec_version": SPEC,
        "id": KAMIYO_IDENTITY,
        "created": EPOCH,
        "modified": EPOCH,
        "name": "Kamiyo",
        "description": "Open exploit intelligence: crypto and DeFi incidents merged from public sources.",
        "identity_class": "system",
    }


def extension_definition() -> dict[str, Any]:
    return {
        "type": "extension-definition",
        "spec_version": SPEC,
        "id": EXTENSION_ID,
        "created_by_ref": KAMIYO_IDENTITY,
        "created": EPOCH,
        "modified": EPOCH,
        "name": "Kamiyo exploit",
        "description": "Facts of a crypto/DeFi exploit that STIX has no property for.",
        "schema": SCHEMA_TEXT,
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def source_identity(source: str) -> dict[str, Any]:
    info = REGISTRY.get(source)
    identity: dict[str, Any] = {
        "type": "identity",
        "spec_version": SPEC,
        "id": source_identity_id(source),
        "created_by_ref": KAMIYO_IDENTITY,
        "created": EPOCH,
        "modified": EPOCH,
        "name": info.title if info else source,
        "identity_class": "organization",
    }
    if info is not None and info.url:
        identity["external_references"] = [{"source_name": "kamiyo", "external_id": source, "url": info.url}]
    else:
        identity["external_references"] = [{"source_name": "kamiyo", "external_id": source}]
    return identity


def fixed_objects() -> list[dict[str, Any]]:
    """The objects every exploit refers to: Kamiyo, the extension definition, each registered source."""
    return [kamiyo_identity(), extension_definition(), *(source_identity(name) for name in sorted(REGISTRY))]


FIXED_IDS = frozenset(o["id"] for o in fixed_objects())


def _source_names(exploit: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(s["source"] for s in exploit["sources"]))


def _tx_hashes(exploit: dict[str, Any]) -> list[str]:
    hashes = [exploit["tx_hash"]] if exploit["tx_hash"] else []
    hashes += [s["tx_hash"] for s in exploit["sources"] if s.get("tx_hash")]
    return list(dict.fromkeys(hashes))


def _pattern_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def exploit_objects(exploit: dict[str, Any], *, unregistered_identities: bool = True) -> list[dict[str, Any]]:
    """The exploit's objects, incident first. With `unregistered_identities`, also the identity of any
    source that is not in the registry (so the group is complete on its own, as a TAXII page needs)."""
    base = ids.incident_int(ids.stable_key(exploit))
    incident_id = f"incident--{ids.text(base)}"
    created = stix_time(exploit["first_seen_at"])
    modified = max(created, stix_time(exploit["updated_at"]))
    common = {"spec_version": SPEC, "created_by_ref": KAMIYO_IDENTITY, "created": created, "modified": modified}
    incident = _incident(exploit, incident_id, common)
    objects: list[dict[str, Any]] = []
    sources = _source_names(exploit)
    if unregistered_identities:
        objects += [source_identity(s) for s in sources if s not in REGISTRY]
    objects.append(incident)
    address = exploit["attacker_address"]
    if address:
        indicator = _indicator(exploit, address, ids.derived_int(base, ids.INDICATOR), common)
        rel_id = ids.text(ids.derived_int(base, ids.INDICATES))
        objects += [indicator, _relationship(common, rel_id, "indicates", indicator["id"], incident_id)]
    for source in sources:
        rel_id = ids.text(ids.derived_int(base, ids.source_link(source)))
        objects.append(_relationship(common, rel_id, "related-to", incident_id, source_identity_id(source)))
    return objects


def _incident(exploit: dict[str, Any], incident_id: str, common: dict[str, Any]) -> dict[str, Any]:
    """The incident: the record's facts in the exploit extension, every source's report as a reference."""
    facts = {
        "chain": exploit["chain"],
        "protocol": exploit["protocol"],
        "category": exploit["category"],
        "loss_kind": exploit["loss_kind"],
        "amount_usd": exploit["amount_usd"],
        "amount_text": exploit["amount_text"],
        "recovered_usd": exploit["recovered_usd"],
        "returned_usd": exploit["returned_usd"],
        "tx_hashes": _tx_hashes(exploit) or None,
        "attacker_address": exploit["attacker_address"],
        "incident_time": stix_time(exploit["timestamp"]),
        "disputed": exploit["disputed"],
        "verified_on_chain": exploit["verified_on_chain"],
        "explorer_url": exploit["explorer_url"],
    }
    extension = {"extension_type": "property-extension", **{k: v for k, v in facts.items() if v is not None}}
    references = [
        {"source_name": s["source"], "external_id": s["ref"], **({"url": s["url"]} if s["url"] else {})}
        for s in exploit["sources"]
    ]
    if exploit["explorer_url"]:
        references.append({"source_name": "explorer", "url": exploit["explorer_url"]})
    incident: dict[str, Any] = {
        "type": "incident",
        "id": incident_id,
        **common,
        "name": f"{exploit['protocol']} exploit",
        "description": exploit["description"] or f"{exploit['protocol']} exploit on {exploit['chain']}",
        "labels": [exploit["category"], exploit["chain"]],
        "extensions": {EXTENSION_ID: extension},
    }
    if references:
        incident["external_references"] = references
    return incident


def _indicator(exploit: dict[str, Any], address: str, number: int, common: dict[str, Any]) -> dict[str, Any]:
    """The attacker address as a STIX pattern."""
    return {
        "type": "indicator",
        "id": f"indicator--{ids.text(number)}",
        **common,
        "name": f"Attacker address of the {exploit['protocol']} exploit",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[cryptocurrency-wallet:value = '{_pattern_string(address)}']",
        "pattern_type": "stix",
        "valid_from": stix_time(exploit["timestamp"]),
    }


def _relationship(common: dict[str, Any], rel_id: str, kind: str, source: str, target: str) -> dict[str, Any]:
    return {
        "type": "relationship",
        "id": f"relationship--{rel_id}",
        **common,
        "relationship_type": kind,
        "source_ref": source,
        "target_ref": target,
    }


def bundle(exploits: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A bundle of the exploits' objects, preceded by Kamiyo's identity, the extension definition and the
    identities of the sources they cite. Its id derives from its content, so a re-fetch repeats it."""
    exploits = list(exploits)
    cited = sorted({s["source"] for e in exploits for s in e["sources"]})
    objects = [kamiyo_identity(), extension_definition(), *(source_identity(s) for s in cited)]
    for exploit in exploits:
        objects += exploit_objects(exploit, unregistered_identities=False)
    digest = "|".join(f"{o['id']}@{o['modified']}" for o in objects)
    return {"type": "bundle", "id": f"bundle--{ids.named('bundle:' + digest)}", "objects": objects}
