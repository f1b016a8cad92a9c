"""DeFiLlama hacks: `GET https://api.llama.fi/hacks`, a JSON list of every hack DeFiLlama tracks.

Item shape (DefiLlama's IHack): `date` (unix seconds, day precision), `name`, `classification`
("Protocol Logic", "Infrastructure", "Ecosystem", "Rugpull", …), `technique` (free text),
`amount` (USD), `chain` (list of chain names), `bridgeHack`, `targetType`, `source` (evidence URL),
`returnedFunds` (USD or null), `defillamaId`, `parentProtocolId`, `language`. No tx hashes and no
stable id: the reference is the name plus the day. Kept as stated: the chain list (`chains`, canonical slugs
in DeFiLlama's order; names outside Kamiyo's vocabulary are left out), `technique`, `classification`, and
the target type (`bridge` when bridgeHack, else targetType as a slug: `defi`, `cefi`, `wallet`, ...).
"""

from __future__ import annotations

import re
from typing import Any

from kamiyo.sources.base import Document, Report, Source, each_object
from kamiyo.vocabulary.normalise import normalise_category, normalise_chain, parse_date_text

NAME = "defillama"
# DeFiLlama's targetType, as a lower-case slug, to Kamiyo's target types; other values keep their slug
# ("wallet", "gaming", "layer_1", ...), "Other" says nothing and is left out.
TARGET_TYPES = {"defi_protocol": "defi", "cex": "cefi", "other": None}


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = float(value)
    except ValueError:
        return None
    return amount if 0 <= amount < 1e11 else None


def _category(item: dict[str, Any]) -> str:
    """Technique first; then the classification, target type and bridge flag fill gaps."""
    category = normalise_category(item.get("technique"))
    classification = str(item.get("classification") or "").lower()
    technique = str(item.get("technique") or "").lower()
    if "rug" in classification:
        return "rug_pull"
    if item.get("bridgeHack") is True and category in ("other", "logic_error", "access_control"):
        return "bridge"
    if category == "other" and ("hot wallet" in technique or item.get("targetType") == "CEX"):
        return "exchange_hack"
    if category == "other" and classification == "protocol logic":
        return "logic_error"
    return category


def _target_type(item: dict[str, Any]) -> str | None:
    """`bridge` when DeFiLlama flags a bridge hack, else its targetType as a slug (`defi`, `cefi`, ...)."""
    if item.get("bridgeHack") is True:
        return "bridge"
    slug = re.sub(r"[^a-z0-9]+", "_", str(item.get("targetType") or "").lower()).strip("_")
    return TARGET_TYPES.get(slug, slug) or None


def _words(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _report(item: dict[str, Any]) -> Report | None:
    name = str(item["name"]).strip()
    when = parse_date_text(item["date"])
    if not name or when is None:
        return None
    chains = [c for c in (normalise_chain(str(n)) for n in item.get("chain") or []) if c]
    amount = _usd(item.get("amount"))
    technique = item.get("technique") or item.get("classification") or "Hack"
    source = item.get("source")
    evidence = source.strip() if isinstance(source, str) and source.strip().startswith("http") else None
    return Report(
        source=NAME,
        source_ref=f"{name}|{when.date().isoformat()}",
        protocol=name,
        timestamp=when,
        chain=chains[0] if len(chains) == 1 else ("multichain" if len(set(chains)) > 1 else None),
        amount_usd=amount,
        amount_text=f"${amount:,.0f}" if amount is not None else None,
        recovered_usd=_usd(item.get("returnedFunds")),
        category=_category(item),
        description=str(technique),
        url=evidence,
        references=(evidence,) if evidence else (),
        raw=item,
        chains=tuple(dict.fromkeys(chains)),
        technique=_words(item.get("technique")),
        classification=_words(item.get("classification")),
        target_type=_target_type(item),
    )


def parse(document: Document) -> list[Report]:
    """Every hack; two entries with one name and day (Merlin, 2021-05-26) get refs "…#2", "…#3" in
    order of amount, so neither overwrites the other."""
    reports = each_object(document.json(), _report, NAME, error="expected a JSON list of hacks")
    by_ref: dict[str, list[Report]] = {}
    for report in reports:
        by_ref.setdefault(report.source_ref, []).append(report)
    for ref, same in by_ref.items():
        same.sort(key=lambda r: (r.amount_usd or 0.0, r.description or ""))
        for n, report in enumerate(same[1:], start=2):
            report.source_ref = f"{ref}#{n}"
    return reports


SOURCE = Source(
    name=NAME,
    title="DeFiLlama Hacks",
    url="https://defillama.com/hacks",
    kind="json",
    endpoint="https://api.llama.fi/hacks",
    cadence_seconds=3600,
    parse=parse,
    description="DeFiLlama's hack database: date, loss, chains, technique; no tx hashes.",
)
