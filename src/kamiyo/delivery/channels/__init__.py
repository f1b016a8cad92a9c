"""Alert channels: each renders a `Summary` natively and sends it; `send_alert` picks by kind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kamiyo.config import Settings
from kamiyo.delivery.channels import discord, email, slack, telegram
from kamiyo.delivery.channels.format import Summary, summarise
from kamiyo.delivery.client import DeliveryClient, SendResult

KINDS = ("discord", "telegram", "slack", "email")
RENDERERS: dict[str, Callable[[Summary], dict[str, Any]]] = {
    "discord": discord.render,
    "telegram": telegram.render,
    "slack": slack.render,
    "email": email.render,
}


async def send_alert(
    kind: str, client: DeliveryClient, target: str, message: dict[str, Any], now: datetime, settings: Settings
) -> SendResult:
    if kind == "discord":
        return await discord.send(client, target, message, now)
    if kind == "slack":
        return await slack.send(client, target, message, now)
    if kind == "telegram":
        return await telegram.send(client, target, message, now, settings)
    if kind == "email":
        return await email.send(target, message, now, settings)
    return SendResult(error=f"unknown channel kind {kind!r}")


__all__ = ["KINDS", "RENDERERS", "Summary", "send_alert", "summarise"]
