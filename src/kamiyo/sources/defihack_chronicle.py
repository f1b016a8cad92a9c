"""DeFi-Hack-Chronicle (DeFiHackLabs/DeFi-Hack-Chronicle on GitHub): deep per-incident JSON files.

`public/data/index.json` is `{"metadata": {...}, "files": [{"id", "date", "protocol", "file"}]}`;
each `public/data/hacks/<file>` follows the repository's schema.json: `id`, `protocol`,
`blockchain[]`, `category[]`, `estimatedLoss.totalUSD` (a string), `attackTime.startTime`
(ISO-8601 UTC), `description`, `transactions[]` (`txHash`, `blockchain`, `role`),
`attackers[]` (`address`, `role`), `references[]`, `metadata.dateAdded` (the day the entry was published;
the report time is the end of that day, the latest moment it states). Detail files are fetched
conditionally, so an unchanged incident costs a 304. `chains` lists the primary chain, the incident's
`blockchain[]` and the chains of its attack transactions; `tx_hashes` every attack transaction on any of
them (ATTACK_ROLES).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from kamiyo.sources.base import Document, ParseError, Report, Source
from kamiyo.sources.http import FetchError, SourceContext
from kamiyo.vocabulary.normalise import (
    normalise_address,
    normalise_category,
    normalise_chain,
    normalise_tx_hash,
    parse_date_text,
    parse_usd,
)

log = logging.getLogger(__name__)
NAME = "defihack_chronicle"
REPO = "https://github.com/DeFiHackLabs/DeFi-Hack-Chronicle"
BLOB = f"{REPO}/blob/main/public/data/hacks/"
CATEGORY_MAP = {
    "business_logic": "logic_error",
    "flashloan": "flash_loan",
    "price_manipulation": "price_oracle",
    "governance_attack": "governance",
    "key_compromise": "private_key",
    "arithmetic_error": "rounding",
    "social_engineering": "phishing",
    "forged_message": "bridge",
}
EXPLOIT_ROLES = ("exploit", "drain", "manipulation", "privilege_escalation")
# Transactions around the attack, not of it: money in and out, returns, on-chain messages.
AFTERMATH_ROLES = ("funding", "laundering", "launder", "consolidation", "recovery", "message", "white_hat_message")
# Transactions of the attack itself (listed in `tx_hashes` whatever their chain); funding, consolidation and
# laundering transactions stay in `raw`.
ATTACK_ROLES = (*EXPLOIT_ROLES, "setup", "deploy", "prepare", "failed_attempt", "post_exploit_attempt")
CONCURRENCY = 8
END_OF_DAY = timedelta(days=1, seconds=-1)


def _category(values: list[Any]) -> str:
    for value in values:
        text = str(value)
        slug = CATEGORY_MAP.get(text) or normalise_category(text)
        if slug != "other":
            return slug
    return "other"


def _tx_hashes(doc: dict[str, Any], default_chain: str | None) -> tuple[tuple[str, ...], str | None]:
    """The chain of the first exploit-role tx (else the first listed chain), and the attack's valid hashes
    on that chain, exploit-role first. Funding, laundering and recovery txs are not the attack's (Echo
    Protocol lists only its Ethereum laundering: the attack was on Monad); they, and txs on other chains,
    stay in `raw`."""
    txs = [t for t in doc.get("transactions") or [] if isinstance(t, dict) and t.get("role") not in AFTERMATH_ROLES]
    ordered = sorted(txs, key=lambda t: 0 if t.get("role") in EXPLOIT_ROLES else 1)
    valid: list[tuple[str, str | None, bool]] = []
    for tx in ordered:
        chain = normalise_chain(str(tx.get("blockchain") or "")) or default_chain
        if value := normalise_tx_hash(str(tx.get("txHash") or ""), chain):
            valid.append((value, chain, tx.get("role") in EXPLOIT_ROLES))
    chain = valid[0][1] if valid and (valid[0][2] or default_chain is None) else default_chain
    return tuple(dict.fromkeys(value for value, on, _ in valid if on == chain)), chain


def _attack_txs(doc: dict[str, Any], default_chain: str | None) -> list[tuple[str, str | None]]:
    """(hash, chain) of every valid attack transaction, whatever its chain."""
    txs = [t for t in doc.get("transactions") or [] if isinstance(t, dict) and t.get("role") in ATTACK_ROLES]
    found: list[tuple[str, str | None]] = []
    for tx in txs:
        chain = normalise_chain(str(tx.get("blockchain") or "")) or default_chain
        if value := normalise_tx_hash(str(tx.get("txHash") or ""), chain):
            found.append((value, chain))
    return found


def _attacker(doc: dict[str, Any]) -> str | None:
    attackers = [a for a in doc.get("attackers") or [] if isinstance(a, dict)]
    attackers.sort(key=lambda a: 0 if a.get("role") == "primary_attacker" else 1)
    return next((addr for a in attackers if (addr := normalise_address(str(a.get("address") or "")))), None)


def _added(doc: dict[str, Any]) -> datetime | None:
    """End of the day `metadata.dateAdded` states: by then the entry was published (None when not stated)."""
    meta = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    day = parse_date_text(meta.get("dateAdded"))
    return None if day is None else day.replace(hour=0, minute=0, second=0, microsecond=0) + END_OF_DAY


def parse_incident(document: Document, file: str) -> Report:
    doc = document.json()
    if not isinstance(doc, dict) or not doc.get("id") or not doc.get("protocol"):
        raise ParseError(f"{file}: not a Chronicle incident")
    chains = [c for c in (normalise_chain(str(b)) for b in doc.get("blockchain") or []) if c]
    attack: dict[str, Any] = doc["attackTime"] if isinstance(doc.get("attackTime"), dict) else {}
    when = parse_date_text(attack.get("startTime")) or parse_date_text(doc.get("date"))
    if when is None:
        raise ParseError(f"{file}: no date")
    hashes, tx_chain = _tx_hashes(doc, chains[0] if chains else None)
    primary = tx_chain or (chains[0] if chains else None)
    attack_txs = _attack_txs(doc, chains[0] if chains else None)
    loss: dict[str, Any] = doc["estimatedLoss"] if isinstance(doc.get("estimatedLoss"), dict) else {}
    total = str(loss.get("totalUSD") or "")
    references = tuple(str(r) for r in doc.get("references") or [] if isinstance(r, str))
    return Report(
        source=NAME,
        source_ref=str(doc["id"]),
        protocol=str(doc["protocol"]),
        timestamp=when,
        chain=primary,
        chains=tuple(dict.fromkeys(c for c in (primary, *chains, *(on for _, on in attack_txs)) if c)),
        tx_hash=hashes[0] if hashes else None,
        tx_hashes=tuple(dict.fromkeys((*hashes, *(value for value, _ in attack_txs)))),
        amount_usd=parse_usd(total) if total else None,
        amount_text=f"${total}" if total else None,
        category=_category(list(doc.get("category") or [])),
        description=str(doc.get("description") or doc.get("title") or "")[:4000],
        attacker_address=_attacker(doc),
        url=BLOB + file,
        references=references,
        reported_at=_added(doc),
        raw={k: v for k, v in doc.items() if k != "locales"},
    )


def parse_index(document: Document) -> list[str]:
    """Detail file names listed by index.json."""
    index = document.json()
    files = index.get("files") if isinstance(index, dict) else None
    if not isinstance(files, list):
        raise ParseError("index.json has no files list")
    return [str(f["file"]) for f in files if isinstance(f, dict) and isinstance(f.get("file"), str)]


async def fetch(ctx: SourceContext) -> list[Report]:
    """index.json (304: nothing changed), then every detail file, 8 at a time, conditionally."""
    index = await ctx.get(ctx.url)
    if index is None:
        return []
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(file: str) -> Report | None:
        async with limit:
            try:
                document = await ctx.get(urljoin(ctx.url, f"hacks/{file}"))
            except FetchError as exc:
                if exc.status == 404:  # listed but not (yet) published
                    return None
                raise
        if document is None:
            return None
        try:
            return parse_incident(document, file)
        except ParseError as exc:  # one broken file must not hide the others
            log.warning("chronicle file skipped", extra={"source": NAME, "file": file, "error": str(exc)})
            return None

    found = await asyncio.gather(*(one(file) for file in parse_index(index)))
    return [report for report in found if report is not None]


SOURCE = Source(
    name=NAME,
    title="DeFi Hack Chronicle",
    url=REPO,
    kind="json",
    endpoint="https://raw.githubusercontent.com/DeFiHackLabs/DeFi-Hack-Chronicle/main/public/data/index.json",
    cadence_seconds=6 * 3600,
    fetch=fetch,
    description="Deep per-incident JSON (loss, attack time, transactions, attackers) by DeFiHackLabs.",
)
