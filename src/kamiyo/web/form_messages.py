"""Pydantic's validation errors, said for people filling in a form (the explorer's filters, webhooks, channels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUIRED = {  # an empty required field, by its name
    "url": "Enter the https:// URL of your receiver",
    "webhook_url": "Enter the webhook URL",
    "chat_id": "Enter a chat id or @channel name",
    "address": "Enter an e-mail address",
}


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def field_message(error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as the message shown next to its field."""
    ctx = error.get("ctx") or {}
    kind = str(error.get("type", ""))
    loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if kind in ("missing", "string_too_short") and loc and loc[-1] in REQUIRED:
        return REQUIRED[loc[-1]]
    if kind in ("float_parsing", "float_type", "finite_number"):
        return "Enter a number of US dollars, e.g. 1000000"
    if kind == "greater_than_equal":
        return f"Must be at least {ctx.get('ge', 0):g}"
    if kind == "less_than_equal":
        return f"Must be at most {ctx.get('le'):,.0f}"
    if kind == "string_too_long":
        return f"At most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"At most {ctx.get('max_length')} entries"
    return sentence(str(error.get("msg", "Not a valid value")).removeprefix("Value error, "))
