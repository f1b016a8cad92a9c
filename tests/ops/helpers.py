"""Small helpers shared by the operations tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

# One minimal exploit row (a test row: never shown publicly), for write-load and write-refusal tests.
INSERT_EXPLOIT = text(
    "INSERT INTO exploits (chain, protocol, protocol_key, amount_sort, timestamp, category, description, "
    "verified_on_chain, is_test, first_seen_at, updated_at) VALUES ('ethereum', :p, :p, -1, :now, 'other', '', "
    "false, true, :now, :now) RETURNING id"
)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text → {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def label_values(text: str, name: str, label: str) -> set[str]:
    return {dict(key[1])[label] for key in samples(text) if key[0] == name and label in dict(key[1])}
