"""Discord: an embed posted to the channel's webhook URL (`?wait=true` so errors come back).

Every text that came from a source (protocol, chain, category, description, changed values) is
Markdown-escaped: a report's `[Claim your refund](https://evil/…)` shows as text, never as a masked link.
Mentions are never parsed (`allowed_mentions`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kamiyo.delivery.channels.format import Summary, short_hash
from kamiyo.delivery.client import DeliveryClient, SendResult

COLORS = {"exploit.created": 0xE02424, "exploit.updated": 0xF59E0B, "webhook.test": 0x3B82F6}
_MARKDOWN = re.compile(r"([\\*_~`|\[\]()<])")
_LINE_START = re.compile(r"^(\s*)([#>+-]|\d+(?=\.))", re.MULTILINE)  # headings, quotes, lists
_SAFE_URL = re.compile(r"https://[^\s()<>\[\]\\]+")


def escape(text: str) -> str:
    """Text Discord shows as typed: each Markdown character backslash-escaped."""
    return _LINE_START.sub(_line_start, _MARKDOWN.sub(r"\\\1", text))


def _line_start(match: re.Match[str]) -> str:
    indent, mark = match.group(1), match.group(2)
    return f"{indent}{mark}\\" if mark[0].isdigit() else f"{indent}\\{mark}"  # `12\.` or `\#`


def link(text: str, url: str | None) -> str:
    """A masked link only to a plain https URL; anything else is shown as escaped text."""
    if url and _SAFE_URL.fullmatch(url):
        return f"[{escape(text)}]({url})"
    return escape(text)


def render(summary: Summary) -> dict[str, Any]:
    fields = [{"name": name, "value": escape(value)[:1024] or "-", "inline": True} for name, value in summary.fields]
    if summary.tx_hash:
        tx = link(short_hash(summary.tx_hash), summary.tx_url) if summary.tx_url else escape(summary.tx_hash)
        fields.append({"name": "Transaction", "value": tx[:1024], "inline": False})
    if summary.changes:
        fields.append({"name": "Changed", "value": escape(summary.changes)[:1024], "inline": False})
    description = escape(summary.description)[:3800]
    embed: dict[str, Any] = {
        "title": escape(summary.title)[:256],
        "url": summary.kamiyo_url,
        "description": (description + f"\n\n[View on Kamiyo]({summary.kamiyo_url})")[:4096],
        "color": COLORS.get(summary.event_type, 0xE02424),
        "fields": fields,
        "footer": {"text": f"Kamiyo · {summary.event_type}"},
    }
    if summary.time:
        embed["timestamp"] = summary.time
    return {"username": "Kamiyo", "embeds": [embed], "allowed_mentions": {"parse": []}}


async def send(client: DeliveryClient, target: str, message: dict[str, Any], now: datetime) -> SendResult:
    url = target + ("&" if "?" in target else "?") + "wait=true"
    result = await client.post_json(url, message, now=now)
    if result.status in (404, 410):
        result.disable_reason = f"Discord answered {result.status}: the webhook was deleted"
    return result
