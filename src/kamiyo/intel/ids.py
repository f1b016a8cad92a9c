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

import functools
import hashlib
import uuid
from typing import Any

NAMESPACE = uuid.UUID("5b0e3a6c-52a3-4f0e-8d1c-0f6f4d8b7a21")
COLLECTION_ID = "7a8d3a70-6f1c-4c5e-9a57-6b6f0f3c2e11"
# Version nibble (bits 76-79) and variant bits (62-63) of a UUID: a mask leaves them alone.
_KEEP = (0xF << 76) | (0x3 << 62)
_VERSION_VARIANT = _KEEP
_V5 = (5 << 76) | (0x2 << 62)
_NS_BYTES = NAMESPACE.bytes


def stable_key(exploit: dict[str, Any]) -> str:
    """`src:<source>:<ref>` of the first report."""
    sources = exploit.get("sources") or ()
    if sources:
        return key_from_report(sources[0]["source"], sources[0]["ref"])
    return f"id:{exploit['id']}"  # no report at all: not expected, and then only stable within one database


def key_from_report(source: str, ref: str) -> str:
    return f"src:{source}:{ref}"


def incident_uuid(key: str) -> uuid.UUID:
    return uuid.UUID(int=incident_int(key))


def incident_int(key: str) -> int:
    """`uuid.uuid5(NAMESPACE, key).int`, without building the UUID object (pages make thousands)."""
    digest = int.from_bytes(hashlib.sha1(_NS_BYTES + key.encode(), usedforsecurity=False).digest()[:16], "big")
    return (digest & ~_VERSION_VARIANT) | _V5


def text(value: int) -> str:
    """`str(uuid.UUID(int=value))`, fast."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.cache
def _mask(label: str) -> int:
    return uuid.uuid5(NAMESPACE, "mask:" + label).int & ~_KEEP


def derived_int(base: int, label: str) -> int:
    """The id of the exploit's `label` object (its inverse is itself: `derived(derived(u, l), l) == u`)."""
    return base ^ _mask(label)


def derived(base: uuid.UUID, label: str) -> uuid.UUID:
    return uuid.UUID(int=derived_int(base.int, label))


@functools.cache
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
