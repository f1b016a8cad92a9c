"""De.Fi REKT database through De.Fi's public GraphQL API (`https://public-api.de.fi/graphql`, key `DEFI_API_KEY`).

The key goes in the `X-Api-Key` header. `rekts(pageNumber, pageSize, orderBy)` returns `id`,
`projectName`, `description`, `date` (ISO-8601), `fundsLost` and `fundsReturned` (USD),
`chaindIds` (De.Fi's own chain ids, spelt so in the schema), `category` and `issueType`; the same
query asks `chains { id name }` to turn those ids into names. The incident date is the only time
the database gives: no publication time (`kamiyo.ingest.report_times` times its reports).
"""

from __future__ import annotations

from typing import Any

from kamiyo.sources._api import graphql
from kamiyo.sources.base import Report, Source, each_object
from kamiyo.sources.http import SourceContext
from kamiyo.vocabulary.normalise import normalise_category, normalise_chain, parse_date_text

NAME = "defi_rekt"
KEY = "DEFI_API_KEY"
PAGE_SIZE = 50
QUERY = (
    "query KamiyoRekts {\n  chains { id name }\n"
    f"  rekts(pageNumber: 1, pageSize: {PAGE_SIZE}, orderBy: {{date: desc}}) {{\n"
    "    id projectName description date fundsLost fundsReturned chaindIds category issueType\n  }\n}"
)


def _usd(value: Any) -> float | None:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    return amount if 0 < amount < 1e11 else None


def _chain(ids: Any, names: dict[str, str]) -> str | None:
    chains = {normalise_chain(names.get(str(i), "")) for i in ids or []} - {None}
    if len(chains) > 1:
        return "multichain"
    return chains.pop() if chains else None


def parse_rekts(data: dict[str, Any]) -> list[Report]:
    names = {str(c.get("id")): str(c.get("name")) for c in data.get("chains") or [] if isinstance(c, dict)}

    def build(item: dict[str, Any]) -> Report | None:
        name, when = str(item.get("projectName") or "").strip(), parse_date_text(item.get("date"))
        if not name or when is None:
            return None
        category = normalise_category(item.get("issueType"))
        if category == "other":
            category = normalise_category(item.get("category"))
        lost = _usd(item.get("fundsLost"))
        return Report(
            source=NAME,
            source_ref=str(item["id"]),
            protocol=name,
            timestamp=when,
            chain=_chain(item.get("chaindIds"), names),
            amount_usd=lost,
            amount_text=f"${lost:,.0f}" if lost else None,
            recovered_usd=_usd(item.get("fundsReturned")),
            category=category,
            description=str(item.get("description") or item.get("issueType") or "")[:4000],
            raw=item,
        )

    return each_object(data.get("rekts"), build, NAME, error="GraphQL answer has no rekts list")


async def fetch(ctx: SourceContext) -> list[Report]:
    headers = {"X-Api-Key": ctx.key} if ctx.key else {}
    data = await graphql(ctx, ctx.url, QUERY, headers=headers)
    return [] if data is None else parse_rekts(data)


SOURCE = Source(
    name=NAME,
    title="De.Fi REKT database",
    url="https://de.fi/rekt-database",
    kind="graphql",
    endpoint="https://public-api.de.fi/graphql",
    cadence_seconds=3 * 3600,
    needs_key=KEY,
    fetch=fetch,
    description="De.Fi's database of hacks, exploits and scams: date, loss, returned funds, chains, issue type.",
)
