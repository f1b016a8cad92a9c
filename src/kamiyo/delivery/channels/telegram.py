"""Telegram: `sendMessage` with HTML formatting through the operator's bot (`TELEGRAM_BOT_TOKEN`)."""

from __future__ import annotations

import contextlib
import html
from datetime import datetime
from typing import Any

import orjson

from kamiyo.config import Settings
from kamiyo.delivery.channels.format import Summary, short_hash
from kamiyo.delivery.client import DeliveryClient, SendResult


def render(summary: Summary) -> dict[str, Any]:
    e = html.escape
    lines = [f"<b>🚨 {e(summary.title)}</b>", ""]
    lines += [f"{name}: <b>{e(value)}</b>" for name, value in summary.fields]
    if summary.tx_hash:
        tx = e(short_hash(summary.tx_hash))
        lines.append(f'Tx: <a href="{e(summary.tx_url)}">{tx}</a>' if summary.tx_url else f"Tx: <code>{tx}</code>")
    if summary.changes:
        lines.append(f"Changed: {e(summary.changes)}")
    if summary.description:
        lines += ["", e(summary.description)]
    lines += ["", f'<a href="{e(summary.kamiyo_url)}">View on Kamiyo</a>']
    return {"text": "\n".join(lines)[:4096], "parse_mode": "HTML", "disable_web_page_preview": True}


async def send(
    client: DeliveryClient, target: str, message: dict[str, Any], now: datetime, settings: Settings
) -> SendResult:
    if not settings.telegram_bot_token:
        return SendResult(error="Telegram is not configured on this server (TELEGRAM_BOT_TOKEN)")
    url = f"{settings.telegram_api_base.rstrip('/')}/bot{settings.telegram_bot_token}/sendMessage"
    # The API base is the operator's setting, not user input: the plain (unguarded) session is used.
    result = await client.post_json(url, {"chat_id": target, **message}, now=now, guarded=False)
    if result.status == 429 and result.retry_after is None and result.excerpt:
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            result.retry_after = float(orjson.loads(result.excerpt)["parameters"]["retry_after"])
    if result.status == 403:
        result.disable_reason = "Telegram answered 403: the bot was blocked or removed from the chat"
    if result.error and settings.telegram_bot_token in result.error:
        result.error = result.error.replace(settings.telegram_bot_token, "***")
    return result
