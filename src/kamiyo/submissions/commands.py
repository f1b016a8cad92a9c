"""What `kamiyo submissions review` does, kept out of cli.py: list the queue, approve or reject one."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts import service as accounts
from kamiyo.config import Settings
from kamiyo.errors import NotFound
from kamiyo.submissions import service
from kamiyo.submissions.models import STATUSES


async def reviewer_id(session: AsyncSession, email: str | None) -> int | None:
    """The reviewing admin's id when `--as EMAIL` names one (recorded on the submission)."""
    if not email:
        return None
    user = await accounts.get_user_by_email(session, email)
    if user is None or not user.is_admin:
        raise NotFound(f"no admin with e-mail {email.strip().lower()} (see `kamiyo users set-admin`)")
    return user.id


async def decide(
    session: AsyncSession,
    settings: Settings,
    submission_id: int,
    *,
    approve: bool,
    note: str | None,
    reviewer: str | None,
) -> str:
    """Approve or reject one pending submission; the line to print."""
    by = await reviewer_id(session, reviewer)
    decision: service.Decision = "approved" if approve else "rejected"
    sub = await service.decide(
        session, submission_id, decision, reviewer_id=by, note=note, alert_max_age=settings.alert_max_age_delta
    )
    if approve:
        return f"approved submission {sub.id}: stored as a community report on exploit {sub.exploit_id}"
    return f"rejected submission {sub.id}"


def _money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.0f}"


async def queue_table(session: AsyncSession, status: str, limit: int) -> Table:
    if status not in (*STATUSES, "all"):
        raise ValueError(f"--status must be one of {', '.join((*STATUSES, 'all'))}")
    rows = await service.review_queue(session, None if status == "all" else status, limit)
    table = Table(title=f"Submissions ({status}, {len(rows)} shown)")
    for column in ("id", "status", "kind", "exploit", "protocol", "chain", "loss", "when", "tx hash", "by", "evidence"):
        table.add_column(column, overflow="fold")
    for sub, email in rows:
        table.add_row(
            str(sub.id),
            sub.status,
            sub.kind,
            str(sub.exploit_id or ""),
            sub.protocol,
            sub.chain,
            _money(sub.amount_usd),
            sub.timestamp.strftime("%Y-%m-%d %H:%M"),
            sub.tx_hash or "",
            email,
            "\n".join(str(u) for u in sub.evidence_urls or []),
        )
    return table
