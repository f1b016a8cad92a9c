"""Telling an owner that Kamiyo disabled their endpoint or channel, and why (by e-mail when configured).

The reason is always stored on the row (`disabled_reason`, shown by the API and dashboard); the e-mail
is a courtesy on top, sent only when `KAMIYO_SMTP_URL` is set, and never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from kamiyo.accounts.models import User
from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery.channels import email
from kamiyo.delivery.queue import WEBHOOKS, QueueKind

log = logging.getLogger(__name__)


def notice(kind: str, target_id: int, where: str, reason: str, public_url: str) -> dict[str, str]:
    what = "webhook endpoint" if kind == "webhook" else f"{kind} alert channel"
    page = f"{public_url.rstrip('/')}/app/{'webhooks' if kind == 'webhook' else 'alerts'}"
    text = (
        f"Kamiyo disabled your {what} {where} (id {target_id}).\n\nReason: {reason}\n\n"
        "Nothing is sent to it until you enable it again. Fix the receiver, then re-enable it on\n"
        f'{page} (or PATCH it with {{"enabled": true}}). Failed deliveries stay in its log and can be replayed.\n'
    )
    html = "<p>" + text.replace("&", "&amp;").replace("<", "&lt;").replace("\n\n", "</p><p>") + "</p>"
    return {"subject": f"[Kamiyo] Your {what} was disabled", "text": text, "html": html}


async def tell_owners(
    db: Database, settings: Settings, disabled: Sequence[tuple[QueueKind, int, str]], now: datetime
) -> None:
    if not settings.smtp_url or not disabled:
        return
    for queue, target_id, reason in disabled:
        model = queue.target_model
        async with db.session() as session:
            found = (
                await session.execute(
                    select(User.email, model).join(User, User.id == model.user_id).where(model.id == target_id)
                )
            ).first()
        if found is None:
            continue
        address: str = found[0]
        target: Any = found[1]
        where = target.url if queue is WEBHOOKS else target.target_hint
        kind = "webhook" if queue is WEBHOOKS else target.kind
        result = await email.send(address, notice(kind, target_id, where, reason, settings.public_url), now, settings)
        if not result.ok:
            log.warning("could not e-mail the owner of %s %d: %s", queue.name, target_id, result.error)
