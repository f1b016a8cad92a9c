"""The two enrichment feeds: what is fetched and how each body becomes (address, label) pairs.

OFAC SDN list, `https://www.treasury.gov/ofac/downloads/sdn.csv`: no header, 12 columns (ent_num,
SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner,
Remarks); the Remarks of sanctioned parties list "Digital Currency Address - ETH 0x…;" (also "alt.
Digital Currency Address - XBT …"). The label names the party: "OFAC SDN: LAZARUS GROUP". The JSON
address lists of 0xB10C/ofac-sanctioned-digital-currency-addresses (a bare array of addresses,
derived from sdn_advanced.xml) are accepted too, labelled "OFAC SDN".

ScamSniffer scam database, `scamsniffer/scam-database` on GitHub: `blacklist/all.json` is
`{"address": [...], "domains": [...]}`, `blacklist/address.json` a bare array; entries are
lower-case EVM addresses (with the odd junk value, which is skipped).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from kamiyo.enrich.labels import Label
from kamiyo.exploits.labels import label_address
from kamiyo.sources.base import Document, ParseError

_DIGITAL = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([A-Za-z0-9:]+)")


@dataclass(frozen=True, slots=True)
class Feed:
    name: str  # the list's slug, stored as `address_labels.source`
    title: str
    url: str  # human page
    endpoint: str
    parse: Callable[[Document], list[Label]]
    cadence_seconds: int = 24 * 3600


def _dedupe(labels: list[Label]) -> list[Label]:
    """One label per address: several SDN entries may list one address; their names are joined."""
    merged: dict[str, list[str]] = {}
    for item in labels:
        names = merged.setdefault(item.address, [])
        if item.label not in names:
            names.append(item.label)
    return [Label(address, "; ".join(names)[:300]) for address, names in merged.items()]


def parse_ofac(document: Document) -> list[Label]:
    text = document.text.lstrip("\ufeff")
    if text.lstrip().startswith("["):
        entries = document.json()
        if not isinstance(entries, list):
            raise ParseError("expected a JSON list of addresses")
        return _dedupe([Label(a, "OFAC SDN") for e in entries if isinstance(e, str) and (a := label_address(e))])
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(len(row) >= 12 for row in rows):
        raise ParseError("not the OFAC SDN CSV (12 columns)")
    found: list[Label] = []
    for row in rows:
        if len(row) < 12:
            continue
        name = " ".join(row[1].split()) or "unnamed party"
        for _asset, value in _DIGITAL.findall(row[11]):
            if address := label_address(value):
                found.append(Label(address, f"OFAC SDN: {name}"))
    return _dedupe(found)


def parse_scamsniffer(document: Document) -> list[Label]:
    data = document.json()
    entries = data.get("address") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ParseError("expected ScamSniffer's address list")
    return _dedupe(
        [Label(a, "ScamSniffer: scam address") for e in entries if isinstance(e, str) and (a := label_address(e))]
    )


FEEDS: dict[str, Feed] = {
    feed.name: feed
    for feed in (
        Feed(
            name="ofac",
            title="OFAC SDN digital-currency addresses",
            url="https://sanctionssearch.ofac.treas.gov/",
            endpoint="https://www.treasury.gov/ofac/downloads/sdn.csv",
            parse=parse_ofac,
        ),
        Feed(
            name="scamsniffer",
            title="ScamSniffer scam database",
            url="https://github.com/scamsniffer/scam-database",
            endpoint="https://raw.githubusercontent.com/scamsniffer/scam-database/main/blacklist/all.json",
            parse=parse_scamsniffer,
        ),
    )
}
