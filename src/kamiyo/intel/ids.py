"""Deterministic identifiers of the intelligence objects.

An exploit's row id differs between databases, so every id derives from its *stable key*: its first
report's `source:ref` (the order `sources[]` lists them: reported first, then by arrival). A report
belongs to one exploit and `(source, ref)` is unique, so no two exploits share a key; the primary
transaction hash is not a key: one transaction can hit two protocols, each its own exploit.

The incident (and the MISP event) is UUIDv5(NAMESPACE, key); the exploit's other objects (indicator,
relationships) use that UUID with a fixed per-kind mask XORed in (version and variant bits untouched, so
each is still a valid UUIDv5-form id). The mask makes them reversible: an object id leads back to its
incident UUID without any stored map.
"""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = uuid.UUID("5b0e3a6c-52a3-4f0e-8d1c-0f6f4d8b7a21")
COLLECTION_ID = "7a8d3a70-6f1c-4c5e-9a57-6b6f0f3c2e11"
# Version nibble (bits 76-79) and variant bits (62-63) of a UUID: a mask leaves them alone.
_KEEP = (0xF << 76) | (0x3 << 62)


def stable_key(exploit: dict[str, Any]) -> str:
    """`src:<source>:<ref>` of the first report."""
    sources = exploit.get("sources") or ()
    if sources:
        return key_from_report(sources[0]["source"], sources[0]["ref"])
    return f"id:{exploit['id']}"  # no report at all: not expected, and then only stable within one database


def key_from_report(source: str, ref: str) -> str:
    return f"src:{source}:{ref}"


def incident_uuid(key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, key)


def _mask(label: str) -> int:
    return uuid.uuid5(NAMESPACE, "mask:" + label).int & ~_KEEP


def derived(base: uuid.UUID, label: str) -> uuid.UUID:
    """The id of the exploit's `label` object (its inverse is itself: `derived(derived(u, l), l) == u`)."""
    return uuid.UUID(int=base.int ^ _mask(label))


def named(label: str) -> uuid.UUID:
    """Ids of the fixed objects (Kamiyo's identity, each source's identity, the extension definition)."""
    return uuid.uuid5(NAMESPACE, label)


INDICATOR = "indicator"
INDICATES = "indicates"


def source_link(source: str) -> str:
    return f"reported-by:{source}"


def candidate_bases(object_uuid: uuid.UUID, sources: list[str]) -> list[uuid.UUID]:
    """The incident UUIDs an object id may belong to: itself (an incident), or unmasked for each kind."""
    labels = [INDICATOR, INDICATES, *(source_link(s) for s in sources)]
    return [object_uuid, *(derived(object_uuid, label) for label in labels)]
