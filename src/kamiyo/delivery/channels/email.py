"""E-mail: a text + HTML message through the operator's SMTP server (`KAMIYO_SMTP_URL`).

`smtp://user:pass@host:587` (STARTTLS when offered), `smtps://…:465` (implicit TLS),
`smtp+starttls://…` (STARTTLS required).
"""

from __future__ import annotations

import html
import re
import time
from datetime import datetime
from email.message import EmailMessage
from typing import Any, TypedDict
from urllib.parse import unquote, urlsplit

import aiosmtplib

from kamiyo.config import Settings
from kamiyo.delivery.channels.format import Summary
from kamiyo.delivery.client import SendResult

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def header(value: str) -> str:
    """A header value on one line: CR, LF and other control characters (from a source's text) become a space."""
    return _CONTROL.sub(" ", value).strip()


class SmtpTarget(TypedDict):
    """The connection arguments of `aiosmtplib.send`, named as it names them."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise ValueError("KAMIYO_SMTP_URL must look like smtp://user:pass@host:port or smtps://…")
    implicit = parts.scheme == "smtps"
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit,
        start_tls=True if parts.scheme == "smtp+starttls" else (False if implicit else None),
    )


def render(summary: Summary) -> dict[str, Any]:
    text_lines = [summary.title, ""] + [f"{name}: {value}" for name, value in summary.fields]
    if summary.tx_hash:
        text_lines.append(f"Transaction: {summary.tx_url or summary.tx_hash}")
    if summary.changes:
        text_lines.append(f"Changed: {summary.changes}")
    if summary.description:
        text_lines += ["", summary.description]
    text_lines += ["", f"View on Kamiyo: {summary.kamiyo_url}"]
    e = html.escape
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{e(n)}</th><td>{e(v)}</td></tr>"
        for n, v in summary.fields
    )
    tx = ""
    if summary.tx_hash:
        link = summary.tx_url or ""
        tx = (
            f"<p>Transaction: <a href='{e(link)}'>{e(summary.tx_hash)}</a></p>"
            if link
            else f"<p>{e(summary.tx_hash)}</p>"
        )
    changed = f"<p><b>Changed:</b> {e(summary.changes)}</p>" if summary.changes else ""
    body_html = (
        f"<html><body style='font-family:sans-serif'><h2>{e(summary.title)}</h2><table>{rows}</table>{tx}{changed}"
        f"<p>{e(summary.description)}</p><p><a href='{e(summary.kamiyo_url)}'>View on Kamiyo</a></p></body></html>"
    )
    return {"subject": f"[Kamiyo] {summary.title}"[:200], "text": "\n".join(text_lines), "html": body_html}


async def send(target: str, message: dict[str, Any], now: datetime, settings: Settings) -> SendResult:
    if not settings.smtp_url:
        return SendResult(error="e-mail is not configured on this server (KAMIYO_SMTP_URL)")
    smtp = parse_smtp_url(settings.smtp_url)
    mail = EmailMessage()
    mail["From"] = header(settings.smtp_from)
    mail["To"] = header(target)
    mail["Subject"] = header(message["subject"])
    mail.set_content(message["text"])
    mail.add_alternative(message["html"], subtype="html")
    started = time.perf_counter()
    try:
        await aiosmtplib.send(mail, **smtp, timeout=settings.webhook_timeout)
        result = SendResult(status=250)
    except aiosmtplib.SMTPException as exc:
        result = SendResult(error=f"SMTP: {type(exc).__name__}: {exc}"[:300])
    except (OSError, TimeoutError) as exc:
        result = SendResult(error=f"SMTP connection: {type(exc).__name__}: {exc}"[:300])
    result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return result
