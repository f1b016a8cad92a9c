"""Slack: Block Kit message posted to an incoming-webhook URL.

Every text that came from a source is mrkdwn-escaped (`&`, `<`, `>`), so it can carry no link
(`<url|text>`) and no mention (`<!channel>`, `<@U…>`); Slack has no escape for `*` `_` `~`, which
only change emphasis.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kamiyo.delivery.channels.format import Summary, short_hash
from kamiyo.delivery.client import DeliveryClient, SendResult

_SAFE_URL = re.compile(r"https://[^\s<>|&]+")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(summary: Summary) -> dict[str, Any]:
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{escape(value)}"} for name, value in summary.fields]
    links = [f"<{summary.kamiyo_url}|View on Kamiyo>"]
    if summary.tx_hash:
        tx = escape(short_hash(summary.tx_hash))
        safe = summary.tx_url and _SAFE_URL.fullmatch(summary.tx_url)
        links.insert(0, f"<{summary.tx_url}|Tx {tx}>" if safe else f"Tx `{tx}`")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": summary.title[:150], "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if summary.description:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(summary.description)[:2900]}})
    if summary.changes:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Changed:* {escape(summary.changes)}"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    return {"text": escape(f"{summary.title} ({summary.chain})"), "blocks": blocks}


async def send(client: DeliveryClient, target: str, message: dict[str, Any], now: datetime) -> SendResult:
    result = await client.post_json(target, message, now=now)
    if result.status in (404, 410):
        result.disable_reason = f"Slack answered {result.status}: the webhook or channel is gone"
    return result
