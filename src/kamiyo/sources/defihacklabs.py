"""DeFiHackLabs: ~850 reproduced DeFi exploits, the default dataset Kamiyo ships with.

SunWeb3Sec/DeFiHackLabs (Apache-2.0) lists incidents in Markdown READMEs (date, protocol, attack
type, "Lost:" text, PoC path, reference links) and keeps per-PoC facts (attacker, attack tx
hashes, the chain forked) in comment headers, extracted to `poc_keyinfo.json`. `_defihacklabs_text`
parses both; this module joins them by PoC path into one `Report` per incident. The bundled copy
under `kamiyo/data/defihacklabs/` is read by `load_bundled()`, and the live fetcher passes freshly
downloaded README texts and key info to the same functions. From the headers each report also carries the
attack and vulnerable contracts, every attack tx, the analysis links (in `references`) and the fork block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urljoin

from kamiyo.kit.timeutil import utcnow
from kamiyo.sources._defihacklabs_text import (
    BLOB_URL,
    URL,
    URL_IN_TEXT,
    KeyInfo,
    ReadmeEntry,
    parse_keyinfo,
    parse_readme,
    poc_stem,
    urls_in,
)
from kamiyo.sources.base import ParseError, Report, Source
from kamiyo.sources.http import FetchError, SourceContext
from kamiyo.vocabulary.normalise import (
    chain_from_url,
    normalise_address,
    normalise_category,
    normalise_chain,
    normalise_tx_hash,
    parse_usd,
    protocol_key,
)

NAME = "defihacklabs"
TITLE = "DeFiHackLabs"
DATA_PACKAGE = "kamiyo"
DATA_DIR = "data/defihacklabs"
README_FILES = (
    "README.md",
    "past_2025_README.md",
    "past_2024_README.md",
    "past_2023_README.md",
    "past_2022_README.md",
    "past_2021_README.md",
)
KEYINFO_FILE = "poc_keyinfo.json"

# Free text in key-info values: URLs are found by `urls_in`, bare hashes and addresses by these.

_EVM_HASH_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_EVM_ADDRESS_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _chain(infos: list[KeyInfo], references: tuple[str, ...]) -> str | None:
    """Explorer domains of attack txs, then of addresses, then the PoC's fork alias, then links."""
    tx_urls = [url for info in infos for value in info.attack_tx_urls for url in urls_in(value)]
    address_urls = [
        url
        for info in infos
        for value in (*info.attacker, *info.vulnerable_contract, *info.attack_contract)
        for url in urls_in(value)
    ]
    for url in (*tx_urls, *address_urls):
        if chain := chain_from_url(url):
            return chain
    for info in infos:
        if chain := normalise_chain(info.fork_chain):
            return chain
    for url in references:
        if ("/tx/" in url or "/address/" in url) and (chain := chain_from_url(url)):
            return chain
    return None


def _tx_candidates(values: Iterable[str]) -> Iterator[str]:
    """Hashes and URLs found in free-text key-info values ("0x... (-2952.97 BNB)", "desc: url")."""
    for value in values:
        yield from urls_in(value)
        yield from _EVM_HASH_IN_TEXT.findall(URL_IN_TEXT.sub(" ", value))


def _tx_hashes(infos: list[KeyInfo], references: tuple[str, ...], chain: str | None) -> tuple[str, ...]:
    """Valid attack txs: header hashes and URLs; else other comments; else tx links in references."""
    tiers = (
        [v for info in infos for v in (*info.attack_tx, *info.attack_tx_urls)],
        [v for info in infos for v in info.tx_hashes_in_other_comments],
        [url for url in references if "/tx/" in url and chain_from_url(url) in (None, chain)],
    )
    for tier in tiers:
        hashes = _dedupe(h for c in _tx_candidates(tier) if (h := normalise_tx_hash(c, chain)))
        if hashes:
            return hashes
    return ()


def _address(value: str) -> str | None:
    """The address a free-text key-info value names: itself, an explorer URL in it, or an EVM address in its text
    ("0x34bd... (Proxy)"); None for "N/A" and the like."""
    if address := normalise_address(value):
        return address
    for url in urls_in(value):
        if address := normalise_address(url):
            return address
    match = _EVM_ADDRESS_IN_TEXT.search(URL_IN_TEXT.sub(" ", value))
    return match.group(0) if match else None


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    """Every address named, each once (EVM ones compared case-insensitively, the first spelling kept)."""
    found: dict[str, str] = {}
    for address in filter(None, map(_address, values)):
        found.setdefault(address.lower() if address.startswith("0x") else address, address)
    return tuple(found.values())


def _attacker(infos: list[KeyInfo]) -> str | None:
    return next(iter(_addresses(v for info in infos for v in info.attacker)), None)


def _fork_block(infos: list[KeyInfo], chain: str | None) -> tuple[str, int] | None:
    """The block the first PoC that names one forks at, on its fork chain (else the report's chain)."""
    for info in infos:
        fork_chain = normalise_chain(info.fork_chain) or chain
        if info.fork_block is not None and fork_chain not in (None, "other"):
            return fork_chain, info.fork_block
    return None


def _amount_usd(lost: str | None, infos: list[KeyInfo]) -> float | None:
    """USD from the README's Lost text; if that has none, from the PoC header's total_lost."""
    for text in (lost, *(info.total_lost for info in infos)):
        if (usd := parse_usd(text)) is not None:
            return usd
    return None


def _category(entry: ReadmeEntry) -> str:
    """The attack type decides; a generic one ("Business Logic Flaw") of a bridge is "bridge"."""
    category = normalise_category(entry.attack_type)
    if category in ("logic_error", "other") and re.search(r"bridge", entry.name, re.I):
        return "bridge"
    return category


def _description(entry: ReadmeEntry, lost: str | None) -> str:
    parts = [entry.attack_type or "Exploit"]
    if lost:
        parts.append(f"Lost: {lost}")
    return ". ".join(parts)


def _raw(entry: ReadmeEntry, infos: list[KeyInfo]) -> dict[str, Any]:
    return {
        "date": entry.date.isoformat(),
        "name": entry.name,
        "type": entry.attack_type,
        "lost": entry.lost,
        "rescued": entry.rescued,
        "readme": entry.readme,
        "poc_paths": list(entry.poc_paths),
        "references": list(entry.references),
        "keyinfo": [_keyinfo_dict(info) for info in infos],
    }


def _keyinfo_dict(info: KeyInfo) -> dict[str, Any]:
    values = ((f.name, getattr(info, f.name)) for f in fields(info))
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values}


class _PocIndex:
    """Key info for a README's PoC path: exact path, else a unique file stem in the same month.

    The loose match repairs README typos ("src/test/2025-08/EverValueCoin" for
    EverValueCoin_exp.sol) and moved files (IUNMI_db27_exp.sol lives outside a month folder).
    """

    def __init__(self, keyinfo: Mapping[str, KeyInfo]) -> None:
        self.keyinfo = keyinfo
        stems: dict[str, list[str]] = {}
        for path in keyinfo:
            stems.setdefault(poc_stem(path)[0], []).append(path)
        self.by_stem = {stem: paths[0] for stem, paths in stems.items() if len(paths) == 1}

    def resolve(self, path: str) -> tuple[str, KeyInfo | None] | None:
        if path in self.keyinfo:
            return path, self.keyinfo[path]
        stem, month = poc_stem(path)
        found = self.by_stem.get(stem)
        if found and len({month, poc_stem(found)[1]} - {None}) <= 1:
            return found, self.keyinfo[found]
        return (path, None) if path.endswith(".sol") else None


def _build_report(entry: ReadmeEntry, index: _PocIndex) -> Report:
    resolved = [r for r in map(index.resolve, entry.poc_paths) if r is not None]
    infos = [info for _, info in resolved if info is not None]
    poc = resolved[0][0] if resolved else None
    lost = entry.lost or next((i.total_lost for i in infos if i.total_lost), None)
    analysis = (url for info in infos for text in info.analysis_links for url in urls_in(text))
    references = _dedupe((*entry.references, *analysis))
    chain = _chain(infos, references)
    tx_hashes = _tx_hashes(infos, references, chain)
    return Report(
        source=NAME,
        source_ref=poc or f"readme:{entry.date.isoformat()}:{entry.name}",
        protocol=entry.name,
        timestamp=datetime(entry.date.year, entry.date.month, entry.date.day, tzinfo=UTC),
        chain=chain,
        tx_hash=tx_hashes[0] if tx_hashes else None,
        tx_hashes=tx_hashes,
        amount_usd=_amount_usd(entry.lost, infos),
        amount_text=lost,
        recovered_usd=parse_usd(entry.rescued),
        category=_category(entry),
        description=_description(entry, lost),
        attacker_address=_attacker(infos),
        url=f"{BLOB_URL}{poc}" if poc else entry.anchor_url,
        references=references,
        raw=_raw(entry, infos),
        attack_contracts=_addresses(v for info in infos for v in info.attack_contract),
        vulnerable_contracts=_addresses(v for info in infos for v in info.vulnerable_contract),
        fork_block=_fork_block(infos, chain),
    )


def _merge(first: Report, other: Report) -> Report:
    """Fold a second entry for the same incident (same day and protocol) into the first."""
    tx_hashes = _dedupe((*first.tx_hashes, *other.tx_hashes))
    return replace(
        first,
        chain=first.chain or other.chain,
        tx_hash=tx_hashes[0] if tx_hashes else None,
        tx_hashes=tx_hashes,
        amount_usd=first.amount_usd if first.amount_usd is not None else other.amount_usd,
        attacker_address=first.attacker_address or other.attacker_address,
        references=_dedupe((*first.references, *other.references)),
        attack_contracts=_dedupe((*first.attack_contracts, *other.attack_contracts)),
        vulnerable_contracts=_dedupe((*first.vulnerable_contracts, *other.vulnerable_contracts)),
        fork_block=first.fork_block or other.fork_block,
        raw={**first.raw, "merged": [*first.raw.get("merged", []), other.raw]},
    )


def build_reports(readmes: Iterable[str], keyinfo: Mapping[str, KeyInfo]) -> list[Report]:
    """One report per incident of the given README texts, joined with key info by PoC path.

    A PoC listed again (in another README) is skipped; a second entry with the same day and
    protocol (two PoCs of one incident) is merged into the first.
    """
    index = _PocIndex(keyinfo)
    reports: dict[str, Report] = {}
    incidents: dict[tuple[date, str], str] = {}
    for text in readmes:
        for entry in parse_readme(text):
            report = _build_report(entry, index)
            key = (entry.date, protocol_key(entry.name))
            if report.source_ref in reports:
                continue
            if key in incidents:
                reports[incidents[key]] = _merge(reports[incidents[key]], report)
                continue
            incidents[key] = report.source_ref
            reports[report.source_ref] = report
    return list(reports.values())


def load_bundled() -> list[Report]:
    """Reports from the DeFiHackLabs snapshot shipped in `kamiyo/data/defihacklabs/`."""
    folder = resources.files(DATA_PACKAGE).joinpath(*DATA_DIR.split("/"))
    texts = [folder.joinpath(name).read_text(encoding="utf-8") for name in README_FILES]
    return build_reports(texts, bundled_keyinfo())


# --------------------------------------------------------------------------------------------
# Live source: the README files from GitHub, joined with the bundled key info
# --------------------------------------------------------------------------------------------

RAW_BASE = "https://raw.githubusercontent.com/SunWeb3Sec/DeFiHackLabs/main/"
FIRST_PAST_YEAR = 2021
_ANY_ENTRY = re.compile(r"^#{1,6}\s*\d{8}(?!\d)", re.M)


@lru_cache(maxsize=1)
def bundled_keyinfo() -> dict[str, KeyInfo]:
    """PoC key info of the bundled snapshot: the live READMEs carry no tx hashes, chains or attackers,
    so incidents already in the snapshot keep those facts; newer ones get what their links give."""
    folder = resources.files(DATA_PACKAGE).joinpath(*DATA_DIR.split("/"))
    return parse_keyinfo(json.loads(folder.joinpath(KEYINFO_FILE).read_text(encoding="utf-8")))


def live_readme_paths(year: int) -> list[str]:
    """README.md (current year) and past/YYYY/README.md for every earlier year, newest first."""
    return ["README.md", *(f"past/{y}/README.md" for y in range(year - 1, FIRST_PAST_YEAR - 1, -1))]


async def fetch(ctx: SourceContext) -> list[Report]:
    """Each README conditionally (a 304 means its incidents are stored already); a past year not
    published yet (404) is skipped. A README with a body but no incident is a format change: error."""
    texts: list[str] = []
    for path in live_readme_paths(utcnow().year):
        try:
            document = await ctx.get(urljoin(ctx.url, path))
        except FetchError as exc:
            if exc.status == 404 and path != "README.md":
                continue
            raise
        if document is None:
            continue
        if not _ANY_ENTRY.search(document.text):
            raise ParseError(f"{path}: no incidents found (format changed?)")
        texts.append(document.text)
    return build_reports(texts, bundled_keyinfo()) if texts else []


SOURCE = Source(
    name=NAME,
    title=TITLE,
    url=URL,
    kind="markdown",
    endpoint=RAW_BASE,
    cadence_seconds=6 * 3600,
    fetch=fetch,
    description="Reproduced DeFi exploits (PoCs) with dates, losses and references; the bundled dataset.",
)
