"""A record's display name and aliases, from the names its sources use.

The display name is the best-known one: the reviewed `name` of the alias group (`data/curation/aliases.toml`)
one of the record's names belongs to; else the name of the most trusted *naming* source (NAME_TRUST: analysts
name incidents, DeFiHackLabs names PoC files), cleaned by `clean_poc_name` when that is DeFiHackLabs. The
aliases are every other name the sources use, then the group's listed names, each once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from kamiyo.vocabulary.curation import alias_groups, alias_keys, joined

POC_SOURCE = "defihacklabs"
# Higher names better. News, alerts and blogs get DEFAULT_NAME_TRUST: a headline names the project as
# readers know it, a PoC file name ("Penpiexyz_io", "Unverified_16d0") is a developer's label.
NAME_TRUST: dict[str, int] = {
    "defihack_chronicle": 90,
    "defillama": 85,
    "slowmist": 80,
    "rekt": 75,
    POC_SOURCE: 30,
    "community": 20,
}
DEFAULT_NAME_TRUST = 50

_EXP = re.compile(r"_exp$", re.I)
# A part naming a contract by its address ("16d0", "0xdd7c", "9ad32"): such a name is an identifier, kept whole.
_ADDRESS_PART = re.compile(r"(?=[0-9a-fx]*\d)(?:0x)?[0-9a-f]{4,}", re.I)
# A domain or handle ending written into the file name: "Penpiexyz_io" (penpie.xyz), "Raft_fi", "Dyson_money".
_DOMAIN = re.compile(r"_(?:io|fi|xyz|money|finance|defi|app|org|com)$", re.I)
_GLUED_XYZ = re.compile(r"(?<=[A-Za-z]{3})xyz$", re.I)


class Named(Protocol):
    source: str
    protocol: str


def clean_poc_name(name: str) -> str:
    """A DeFiHackLabs PoC name as a display name, conservatively: "Penpiexyz_io" -> "Penpie",
    "Bedrock_DeFi" -> "Bedrock", "AIRBTC_exp" -> "AIRBTC", "Caterpillar_Coin_CUT" -> "Caterpillar Coin CUT".

    Steps: drop a trailing "_exp"; a name with an address part ("Unverified_16d0", "MEVbot_0xdd7c") stays as it
    is; drop one domain ending after an underscore (io, fi, xyz, money, finance, defi, app, org, com), then an
    "xyz" glued to the end; underscores become spaces. CamelCase is never split ("PancakeBunny" is a name).
    """
    stem = _EXP.sub("", name.strip()) or name.strip()
    if any(_ADDRESS_PART.fullmatch(part) for part in stem.split("_")[1:]):
        return stem
    stem = _GLUED_XYZ.sub("", _DOMAIN.sub("", stem))
    cleaned = " ".join(stem.replace("_", " ").split())
    return cleaned if len(cleaned) >= 2 else name.strip()


def _trust(report: Named) -> int:
    return NAME_TRUST.get(report.source, DEFAULT_NAME_TRUST)


def _fold(name: str) -> str:
    """The form names are told apart in: letters and digits, lower-cased ("Poly Network" = "PolyNetwork")."""
    return joined(name) or name.casefold()


def display_name(reports: Sequence[Named]) -> tuple[str, list[str]]:
    """(display name, aliases) of one record's reports (at least one)."""
    ranked = sorted(reports, key=lambda r: -_trust(r))
    spoken = list(dict.fromkeys(r.protocol.strip() for r in ranked if r.protocol.strip()))
    keys = alias_keys()
    key = next((keys[j] for n in spoken if (j := joined(n)) in keys), None)
    group = alias_groups().get(key) if key else None
    best = next((r for r in ranked if r.protocol.strip()), ranked[0])
    if group is not None and group.name:
        name = group.name
    elif best.source == POC_SOURCE:
        name = clean_poc_name(best.protocol)
    else:
        name = best.protocol.strip()
    seen = {_fold(name)}
    aliases = []
    for other in (*spoken, *(group.names if group else ())):
        if _fold(other) not in seen:
            seen.add(_fold(other))
            aliases.append(other)
    return name, aliases
