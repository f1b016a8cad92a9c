"""Reviewed knowledge kept in the repository: other names of one project, and corrections of upstream errors.

`data/curation/aliases.toml` maps names that sources spell differently (a rebrand, a product against its
company, a PoC file name) to one merge key, and may give the group's display name;
`data/curation/corrections.toml` sets one fact of one record to a reviewed value. Each entry carries its
reason (and a correction its reference). Both are read once per process; corrections are applied whenever
a record is derived, so a later ingest cannot undo them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from kamiyo.kit.timeutil import parse_when
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

LOSS_KINDS = ("realised", "nominal")
CORRECTABLE = ("amount_usd", "loss_kind", "returned_usd", "chain", "timestamp", "category")


class CurationError(ValueError):
    """A curated file breaks its format; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Correction:
    target: str  # "source:source_ref" of a report in the record
    field: str
    value: Any
    reason: str
    reference: str | None

    def shown(self) -> dict[str, Any]:
        value = self.value.isoformat().replace("+00:00", "Z") if isinstance(self.value, datetime) else self.value
        return {"field": self.field, "value": value, "reason": self.reason, "reference": self.reference}


def _read(name: str) -> dict[str, Any]:
    text = resources.files("kamiyo").joinpath("data", "curation", name).read_text(encoding="utf-8")
    return tomllib.loads(text)


_NOT_JOINED = re.compile(r"[^a-z0-9]+")


def joined(name: str) -> str:
    """Lower-case ASCII letters and digits of a name, the form alias names are compared in."""
    return _NOT_JOINED.sub("", name.lower())


@dataclass(frozen=True, slots=True)
class AliasGroup:
    """One project's names as sources write them; `name`, where reviewed, is the one records display."""

    key: str
    names: tuple[str, ...]
    name: str | None = None


def parse_aliases(document: dict[str, Any]) -> dict[str, AliasGroup]:
    """Merge key -> its group; any bad entry fails the whole file."""
    found: dict[str, AliasGroup] = {}
    for n, entry in enumerate(document.get("alias", []), start=1):
        key, names, reason, name = entry.get("key"), entry.get("names"), entry.get("reason"), entry.get("name")
        if not isinstance(key, str) or not key or key != joined(key):
            raise CurationError(f"aliases.toml entry {n}: key must be lower-case letters and digits")
        if not isinstance(names, list) or not names or not all(isinstance(x, str) and joined(x) for x in names):
            raise CurationError(f"aliases.toml entry {n} ({key}): names must be a non-empty list of names")
        if not isinstance(reason, str) or not reason.strip():
            raise CurationError(f"aliases.toml entry {n} ({key}): a reason is required")
        if key in found:
            raise CurationError(f"aliases.toml entry {n} ({key}): the key has an entry already")
        if name is not None and name not in names:
            raise CurationError(f"aliases.toml entry {n} ({key}): the display name must be one of its names")
        found[key] = AliasGroup(key, tuple(names), name)
    return found


@cache
def alias_groups() -> dict[str, AliasGroup]:
    return parse_aliases(_read("aliases.toml"))


@cache
def alias_keys() -> dict[str, str]:
    """Joined name -> merge key, from aliases.toml."""
    return {joined(name): group.key for group in alias_groups().values() for name in group.names}


def _value(field: str, value: Any, where: str) -> Any:
    if field in ("amount_usd", "returned_usd"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise CurationError(f"{where}: {field} must be a non-negative number")
        return float(value)
    if field == "loss_kind" and value in LOSS_KINDS:
        return value
    if field == "chain" and value in CHAINS:
        return value
    if field == "category" and value in CATEGORIES:
        return value
    if field == "timestamp" and isinstance(value, str):
        try:
            return parse_when(value)
        except ValueError:
            pass
    raise CurationError(f"{where}: {value!r} is not a valid {field}")


def parse_corrections(document: dict[str, Any]) -> dict[str, list[Correction]]:
    """Target report key -> its corrections, in file order; any bad entry fails the whole file."""
    found: dict[str, list[Correction]] = {}
    for n, entry in enumerate(document.get("correction", []), start=1):
        target, field = entry.get("target"), entry.get("field")
        where = f"corrections.toml entry {n} ({target})"
        if not isinstance(target, str) or ":" not in target:
            raise CurationError(f"{where}: target must be 'source:source_ref'")
        if field not in CORRECTABLE:
            raise CurationError(f"{where}: field must be one of {', '.join(CORRECTABLE)}")
        reason, reference = entry.get("reason"), entry.get("reference")
        if not isinstance(reason, str) or not reason.strip():
            raise CurationError(f"{where}: a reason is required")
        if not isinstance(reference, str) or not reference.startswith(("https://", "http://")):
            raise CurationError(f"{where}: a reference URL is required")
        value = _value(field, entry.get("value"), where)
        found.setdefault(target, []).append(Correction(target, field, value, reason.strip(), reference))
    return found


@cache
def corrections() -> dict[str, list[Correction]]:
    return parse_corrections(_read("corrections.toml"))


def report_key(source: str, source_ref: str) -> str:
    return f"{source}:{source_ref}"
