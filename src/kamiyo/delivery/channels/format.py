"""The facts every alert shows, in plain values; each channel turns them into its native format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS


def money(amount: float | None) -> str:
    if amount is None:
        return "unknown"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= limit:
            return f"${amount / limit:,.2f}{suffix}".replace(".00" + suffix, suffix)
    return f"${amount:,.0f}"


def short_hash(tx: str) -> str:
    return tx if len(tx) <= 18 else f"{tx[:10]}…{tx[-6:]}"


@dataclass(frozen=True, slots=True)
class Summary:
    event_type: str
    title: str
    protocol: str
    amount: str
    chain: str
    category: str
    time: str  # ISO-8601 UTC
    description: str
    tx_hash: str | None
    tx_url: str | None
    kamiyo_url: str
    changes: str | None  # "amount_usd: $1M → $2M; chain: …" for exploit.updated

    @property
    def fields(self) -> list[tuple[str, str]]:
        return [
            ("Protocol", self.protocol),
            ("Loss", self.amount),
            ("Chain", self.chain),
            ("Category", self.category),
            ("Time", self.time.replace("T", " ").replace("Z", " UTC")),
        ]


def _change_text(changes: dict[str, Any] | None) -> str | None:
    if not changes:
        return None
    parts = []
    for field, change in changes.items():
        before, after = change if isinstance(change, list | tuple) and len(change) == 2 else (None, change)
        if field == "amount_usd":
            before, after = money(before), money(after)
        parts.append(f"{field}: {before} → {after}")
    return "; ".join(parts)


def summarise(event_type: str, exploit: dict[str, Any], public_url: str, changes: dict[str, Any] | None) -> Summary:
    chain = CHAINS.get(exploit.get("chain") or "")
    category = CATEGORIES.get(exploit.get("category") or "")
    protocol = str(exploit.get("protocol") or "Unknown protocol")
    amount = money(exploit.get("amount_usd"))
    verb = {"exploit.updated": "updated", "webhook.test": "test alert"}.get(event_type, "exploited")
    title = f"{protocol} {verb}" + (f": {amount} lost" if exploit.get("amount_usd") is not None else "")
    if event_type == "webhook.test":
        title = f"Kamiyo test alert: {protocol}"
    return Summary(
        event_type=event_type,
        title=title,
        protocol=protocol,
        amount=amount,
        chain=chain.name if chain else str(exploit.get("chain") or "unknown"),
        category=category.name if category else str(exploit.get("category") or "other"),
        time=str(exploit.get("timestamp") or ""),
        description=str(exploit.get("description") or "")[:500],
        tx_hash=exploit.get("tx_hash"),
        tx_url=exploit.get("explorer_url"),
        kamiyo_url=f"{public_url.rstrip('/')}/app/exploits/{exploit.get('id')}",
        changes=_change_text(changes),
    )
