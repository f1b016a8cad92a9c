"""Discord: an embed posted to the channel's webhook URL (`?wait=true` so errors come back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kamiyo.delivery.channels.format import Summary, short_hash
from kamiyo.delivery.client import DeliveryClient, SendResult

COLORS = {"exploit.created": 0xE02424, "exploit.updated": 0xF59E0B, "webhook.test": 0x3B82F6}


def render(summary: Summary) -> dict[str, Any]:
    fields = [{"name": name, "value": value[:1024] or "-", "inline": True} for name, value in summary.fields]
    if summary.tx_hash:
        tx = f"[{short_hash(summary.tx_hash)}]({summary.tx_url})" if summary.tx_url else summary.tx_hash
        fields.append({"name": "Transaction", "value": tx[:1024], "inline": False})
    if summary.changes:
        fields.append({"name": "Changed", "value": summary.changes[:1024], "inline": False})
    embed: dict[str, Any] = {
        "title": summary.title[:256],
        "url": summary.kamiyo_url,
        "description": (summary.description + f"\n\n[View on Kamiyo]({summary.kamiyo_url})")[:4096],
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
