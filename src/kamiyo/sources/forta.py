"""Forta Network alerts through its GraphQL API (`https://api.forta.network/graphql`, key `FORTA_API_KEY`).

`alerts(input: AlertsInput)` (as the forta-agent SDK's getAlerts sends it: `bots`, `first`,
`severities`) answers `{"alerts": [...], "pageInfo": {"hasNextPage", "endCursor": {"alertId",
"blockNumber"}}}`. An alert has `hash`, `alertId`, `name`, `description`, `severity`, `createdAt`,
`addresses`, `source {transactionHash, block {number, timestamp, chainId}, bot {id}}`, `projects
[{id, name}]` and `contracts [{address, name}]`. Only critical and high alerts of the Attack
Detector feed that name the attacked project are kept; the block time is the incident time and
`createdAt` the report time. The key is sent as a bearer token. While `pageInfo.hasNextPage`, the
next page is asked for with `input.after = endCursor`, up to MAX_PAGES pages; a page whose alerts
are all stored already, or a cursor seen before, ends it.
"""

from __future__ import annotations

import re
from typing import Any

from kamiyo.sources._api import bearer, graphql
from kamiyo.sources._classify import extract_category
from kamiyo.sources.base import Report, Source, each_object
from kamiyo.sources.http import SourceContext
from kamiyo.vocabulary.normalise import normalise_address, normalise_chain, normalise_tx_hash, parse_date_text

NAME = "forta"
KEY = "FORTA_API_KEY"
ATTACK_DETECTOR = "0x80ed808b586aeebe9cdd4088ea4dea0a8e322909c0e4493c993e060e89c09ed1"
QUERY = """query KamiyoAlerts($input: AlertsInput) {
  alerts(input: $input) {
    pageInfo { hasNextPage endCursor { alertId blockNumber } }
    alerts {
      hash alertId name description severity protocol createdAt addresses
      source { transactionHash block { number timestamp chainId } bot { id } }
      projects { id name }
      contracts { address name }
    }
  }
}"""
VARIABLES = {"input": {"bots": [ATTACK_DETECTOR], "first": 100, "severities": ["CRITICAL", "HIGH"]}}
MAX_PAGES = 3
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")


def _victim(alert: dict[str, Any]) -> str | None:
    for key in ("projects", "contracts"):
        for entry in alert.get(key) or []:
            if isinstance(entry, dict) and str(entry.get("name") or "").strip():
                return str(entry["name"]).strip()
    return None


def _attacker(alert: dict[str, Any]) -> str | None:
    found = _ADDRESS.search(str(alert.get("description") or ""))
    candidates = [found.group(0)] if found else []
    candidates += [str(a) for a in alert.get("addresses") or []]
    return next((a for a in (normalise_address(c) for c in candidates) if a), None)


def parse_alerts(data: dict[str, Any]) -> list[Report]:
    page = data.get("alerts")
    alerts = page.get("alerts") if isinstance(page, dict) else None

    def build(alert: dict[str, Any]) -> Report | None:
        source: dict[str, Any] = alert["source"] if isinstance(alert.get("source"), dict) else {}
        block: dict[str, Any] = source["block"] if isinstance(source.get("block"), dict) else {}
        victim = _victim(alert)
        created = parse_date_text(alert.get("createdAt"))
        when = parse_date_text(block.get("timestamp")) or created
        if victim is None or when is None or str(alert.get("severity")).upper() not in ("CRITICAL", "HIGH"):
            return None
        chain_id = block.get("chainId")
        chain = normalise_chain(int(chain_id)) if isinstance(chain_id, int | str) and str(chain_id).isdigit() else None
        tx = normalise_tx_hash(str(source.get("transactionHash") or ""), chain)
        text = f"{alert.get('name') or ''}: {alert.get('description') or ''}"
        return Report(
            source=NAME,
            source_ref=str(alert["hash"]),
            protocol=victim,
            timestamp=when,
            chain=chain,
            tx_hash=tx,
            tx_hashes=(tx,) if tx else (),
            category=extract_category(text),
            description=text[:2000],
            attacker_address=_attacker(alert),
            url=f"https://explorer.forta.network/alert/{alert['hash']}",
            reported_at=created,
            raw=alert,
        )

    return each_object(alerts, build, NAME, error="GraphQL answer has no alerts list")


def _next_cursor(data: dict[str, Any]) -> dict[str, Any] | None:
    page = data.get("alerts")
    info = page.get("pageInfo") if isinstance(page, dict) else None
    if not isinstance(info, dict) or not info.get("hasNextPage"):
        return None
    cursor = info.get("endCursor")
    return cursor if isinstance(cursor, dict) and cursor else None


def _hashes(data: dict[str, Any]) -> set[str]:
    alerts = data["alerts"]["alerts"]  # parse_alerts has checked the shape
    return {str(a.get("hash")) for a in alerts if isinstance(a, dict)}


async def fetch(ctx: SourceContext) -> list[Report]:
    found: dict[str, Report] = {}
    seen: set[str] = set()
    cursors: set[str] = set()
    variables: dict[str, Any] = VARIABLES
    for number in range(MAX_PAGES):
        data = await graphql(ctx, ctx.url, QUERY, variables, headers=bearer(ctx.key), conditional=number == 0)
        if data is None:
            break
        for report in parse_alerts(data):
            found.setdefault(report.source_ref, report)
        hashes = _hashes(data)
        fresh = hashes - seen - ctx.known_refs
        seen |= hashes
        cursor = _next_cursor(data)
        key = str(sorted(cursor.items())) if cursor else ""
        if cursor is None or not fresh or key in cursors:
            break
        cursors.add(key)
        variables = {"input": {**VARIABLES["input"], "after": cursor}}
    return list(found.values())


SOURCE = Source(
    name=NAME,
    title="Forta Attack Detector",
    url="https://explorer.forta.network",
    kind="graphql",
    endpoint="https://api.forta.network/graphql",
    cadence_seconds=600,
    needs_key=KEY,
    fetch=fetch,
    description="Critical and high alerts of Forta's Attack Detector feed that name the attacked project.",
)
