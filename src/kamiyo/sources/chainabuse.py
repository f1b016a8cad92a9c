"""Chainabuse reports of contract exploits (`GET https://api.chainabuse.com/v0/reports`, key `CHAINABUSE_API_KEY`).

Authentication is HTTP Basic with the API key as both user name and password (Chainabuse docs).
Filters: `category=CONTRACT_EXPLOIT`, `orderByField=CREATED_AT`, `orderByDirection=DESC`,
`perPage` (at most 50). A report has `id`, `createdAt` (ISO-8601), `scamCategory`, `description`,
`addresses` ([{"address", "chain" ("ETH", "BSC", "SOL", …), "domain"}]), `transactionHashes`
([{"transactionHash", "chain"}]), `losses` ([{"asset", "amount"}]), `checked`, `trusted`. The reported
address is the exploiter's; the attacked project is read from the description, and reports that
name none are left out.
"""

from __future__ import annotations

import base64
from typing import Any

from kamiyo.sources._api import request
from kamiyo.sources._classify import extract
from kamiyo.sources._protocol_names import extract_protocol
from kamiyo.sources.base import Document, Report, Source, each_object
from kamiyo.sources.http import SourceContext
from kamiyo.vocabulary.normalise import (
    USD_STABLECOINS,
    normalise_address,
    normalise_chain,
    normalise_tx_hash,
    parse_date_text,
)

NAME = "chainabuse"
KEY = "CHAINABUSE_API_KEY"
PARAMS = {"category": "CONTRACT_EXPLOIT", "orderByField": "CREATED_AT", "orderByDirection": "DESC",
          "perPage": "50", "page": "1"}  # fmt: skip


def _loss(report: dict[str, Any]) -> float | None:
    total = 0.0
    for loss in report.get("losses") or []:
        asset = str(loss.get("asset") or "").upper() if isinstance(loss, dict) else ""
        if asset == "USD" or asset in USD_STABLECOINS:
            try:
                total += float(loss.get("amount") or 0)
            except (TypeError, ValueError):
                continue
    return total if 0 < total < 1e11 else None


def _build(item: dict[str, Any]) -> Report | None:
    description = " ".join(str(item.get("description") or "").split())
    when = parse_date_text(item.get("createdAt"))
    first_line = description.split(". ", 1)[0]
    protocol = extract_protocol(first_line) or extract_protocol(description)
    if protocol is None or when is None or item.get("scamCategory") != "CONTRACT_EXPLOIT":
        return None
    addresses = [a for a in item.get("addresses") or [] if isinstance(a, dict)]
    chain = next((c for a in addresses if (c := normalise_chain(str(a.get("chain") or "")))), None)
    txs = [t for t in item.get("transactionHashes") or [] if isinstance(t, dict)]
    chain = chain or next((c for t in txs if (c := normalise_chain(str(t.get("chain") or "")))), None)
    hashes = tuple(dict.fromkeys(h for t in txs if (h := normalise_tx_hash(str(t.get("transactionHash")), chain))))
    facts = extract(first_line, description)
    loss = _loss(item) or (facts.amount_usd if facts else None)
    return Report(
        source=NAME,
        source_ref=str(item["id"]),
        protocol=protocol,
        timestamp=when,
        chain=chain or (facts.chain if facts else None),
        tx_hash=hashes[0] if hashes else None,
        tx_hashes=hashes,
        amount_usd=loss,
        amount_text=f"${loss:,.0f}" if loss else None,
        category=facts.category if facts else "other",
        description=description[:2000],
        attacker_address=next((a for x in addresses if (a := normalise_address(str(x.get("address") or "")))), None),
        url=f"https://www.chainabuse.com/report/{item['id']}",
        reported_at=when,
        raw=item,
    )


def parse(document: Document) -> list[Report]:
    answer = document.json()
    items = answer.get("reports") if isinstance(answer, dict) else answer
    return each_object(items, _build, NAME, error="expected a list of Chainabuse reports")


async def fetch(ctx: SourceContext) -> list[Report]:
    token = base64.b64encode(f"{ctx.key}:{ctx.key}".encode()).decode() if ctx.key else None
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"} if token else {}
    document = await request(ctx, ctx.url, params=PARAMS, headers=headers)
    return [] if document is None else parse(document)


SOURCE = Source(
    name=NAME,
    title="Chainabuse",
    url="https://www.chainabuse.com",
    kind="json",
    endpoint="https://api.chainabuse.com/v0/reports",
    cadence_seconds=3600,
    needs_key=KEY,
    fetch=fetch,
    description="Community reports in Chainabuse's contract-exploit category that name the attacked project.",
)
