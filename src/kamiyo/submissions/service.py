"""Community submissions: accept (with duplicate matching and a daily cap), list, approve, reject.

Approval stores the submission through `store_reports`, the one write path for exploits, as a report
from source `community` (`source_ref` `submission:<id>`, the submitter and evidence in `raw`), so the
incident gains a community source like any other. A correction (`source_ref` `correction:<id>`) is pinned
to its target exploit: its report row is first written on the target, so `store_reports` takes the update
path (known source and ref) and re-derives that exploit, whatever its tx hash or fuzzy match would say;
its stated facts then outrank every source, like a curated correction, and it is listed in the record's
`corrections` rather than among its sources. Rejection writes
nothing outside `submissions`. Services never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.errors import Conflict, InvalidInput, KamiyoError, NotFound
from kamiyo.exploits.models import CORRECTION_REF, Exploit, ReportRow, is_public
from kamiyo.ingest import validate
from kamiyo.ingest.matching import fuzzy_candidates
from kamiyo.ingest.runner import STORE_LOCK_KEY
from kamiyo.ingest.store import report_values, store_reports
from kamiyo.kit.attrs import pick
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Report
from kamiyo.submissions.models import Submission
from kamiyo.submissions.schemas import SubmissionIn
from kamiyo.tiers import get_tier
from kamiyo.vocabulary.normalise import protocol_key

Decision = Literal["approved", "rejected"]

SOURCE = "community"
# What a submission states about the incident: taken from the form as it is, and passed on to its report.
INCIDENT_FIELDS = (
    "tx_hash",
    "chain",
    "protocol",
    "amount_usd",
    "timestamp",
    "category",
    "description",
    "attacker_address",
)


class DailyCapReached(KamiyoError):
    status = 429


def daily_cap(tier: str) -> int:
    return get_tier(tier).submissions_per_day


def _day_start(now: datetime) -> datetime:
    return datetime.combine(now.date(), time.min, tzinfo=UTC)


async def used_today(session: AsyncSession, user_id: int, now: datetime | None = None) -> int:
    start = _day_start(now or utcnow())
    found = await session.execute(
        select(func.count()).where(Submission.user_id == user_id, Submission.created_at >= start)
    )
    return int(found.scalar_one())


async def _check_cap(session: AsyncSession, user: User, now: datetime) -> None:
    cap, used = daily_cap(user.tier), await used_today(session, user.id, now)
    if used >= cap:
        reset = _day_start(now) + timedelta(days=1)
        wait = max(1, int((reset - now).total_seconds()))
        raise DailyCapReached(
            f"daily limit of {cap} submissions on the {user.tier} tier reached; retry in {wait}s",
            details={"limit": cap, "reset": int(reset.timestamp())},
            headers={"Retry-After": str(wait)},
        )


async def _exploit_by_tx(session: AsyncSession, tx_hash: str) -> int | None:
    found = await session.execute(select(Exploit.id).where(Exploit.tx_hash == tx_hash, is_public()).limit(1))
    exploit_id = found.scalar_one_or_none()
    if exploit_id is None:
        via = await session.execute(
            select(ReportRow.exploit_id).join(Exploit, Exploit.id == ReportRow.exploit_id)
            .where(ReportRow.tx_hash == tx_hash, is_public())
            .limit(1)
        )  # fmt: skip
        exploit_id = via.scalar_one_or_none()
    return exploit_id


async def _public_exploit(session: AsyncSession, exploit_id: int) -> bool:
    found = await session.execute(select(Exploit.id).where(Exploit.id == exploit_id, is_public()))
    return found.scalar_one_or_none() is not None


def to_report(sub: Submission, *, reviewer_id: int | None = None) -> Report:
    urls = [str(u) for u in sub.evidence_urls or []]
    return Report(
        source=SOURCE,
        source_ref=f"{CORRECTION_REF if sub.kind == 'correction' else 'submission:'}{sub.id}",
        **{**pick(sub, *INCIDENT_FIELDS), "description": sub.description or None},
        url=urls[0] if urls else None,
        references=tuple(urls),
        reported_at=sub.created_at,
        raw={
            "submission_id": sub.id,
            "submitted_by": sub.user_id,
            "kind": sub.kind,
            "evidence_urls": urls,
            "reviewed_by": reviewer_id,
        },
    )


async def find_target(session: AsyncSession, data: SubmissionIn) -> int | None:
    """The stored public exploit this submission duplicates: the one named, the one holding its tx hash,
    or the best fuzzy match (same loose protocol key, ±3 days, compatible loss); None if it is new."""
    by_tx = await _exploit_by_tx(session, data.tx_hash) if data.tx_hash else None
    if data.exploit_id is not None:
        if not await _public_exploit(session, data.exploit_id):
            raise InvalidInput("exploit_id: no such exploit", details=[{"field": "exploit_id"}])
        if by_tx is not None and by_tx != data.exploit_id:
            raise Conflict(
                f"tx_hash: belongs to exploit {by_tx}, not {data.exploit_id}",
                details={"field": "tx_hash", "exploit_id": by_tx},
            )
        return data.exploit_id
    if by_tx is not None:
        return by_tx
    probe = Report(
        source=SOURCE, source_ref="probe", protocol=data.protocol, timestamp=data.timestamp,
        chain=data.chain, amount_usd=data.amount_usd,
    )  # fmt: skip
    for exploit_id in (await fuzzy_candidates(session, [probe])).get(0, []):
        if await _public_exploit(session, exploit_id):
            return exploit_id
    return None


async def _check_not_pending(session: AsyncSession, user_id: int, data: SubmissionIn) -> None:
    """The same incident twice in the queue is noise: refuse a repeat of a pending submission."""
    same_incident = (
        Submission.tx_hash == data.tx_hash
        if data.tx_hash
        else (Submission.chain == data.chain) & (func.lower(Submission.protocol) == protocol_key(data.protocol))
    )
    stmt = select(Submission.id).where(Submission.status == "pending", same_incident)
    if not data.tx_hash:
        day = _day_start(data.timestamp)
        stmt = stmt.where(
            Submission.user_id == user_id,
            Submission.timestamp >= day,
            Submission.timestamp < day + timedelta(days=1),
        )
    found = (await session.execute(stmt.limit(1))).scalar_one_or_none()
    if found is not None:
        raise Conflict(f"this incident is already awaiting review (submission {found})", details={"id": found})


async def create_submission(
    session: AsyncSession, user: User, data: SubmissionIn, *, now: datetime | None = None
) -> Submission:
    """Hold a validated submission for review; a duplicate of a stored exploit becomes its correction."""
    now = now or utcnow()
    await _check_cap(session, user, now)
    await _check_not_pending(session, user.id, data)
    target = await find_target(session, data)
    sub = Submission(
        user_id=user.id,
        status="pending",
        kind="correction" if target is not None else "new",
        exploit_id=target,
        **pick(data, *INCIDENT_FIELDS),
        evidence_urls=data.evidence_urls,
        created_at=now,
    )
    session.add(sub)
    await session.flush()
    return sub


async def list_for_user(session: AsyncSession, user_id: int, limit: int = 100) -> Sequence[Submission]:
    rows = await session.execute(
        select(Submission).where(Submission.user_id == user_id).order_by(Submission.id.desc()).limit(limit)
    )
    return rows.scalars().all()


async def get_for_user(session: AsyncSession, user_id: int, submission_id: int) -> Submission:
    sub = await session.get(Submission, submission_id)
    if sub is None or sub.user_id != user_id:
        raise NotFound(f"no submission {submission_id}")
    return sub


async def review_queue(
    session: AsyncSession, status: str | None = "pending", limit: int = 100
) -> list[tuple[Submission, str]]:
    """Submissions with their submitter's e-mail: oldest first when pending (a queue), else newest first."""
    stmt = select(Submission, User.email).join(User, User.id == Submission.user_id)
    if status:
        stmt = stmt.where(Submission.status == status)
    order = Submission.id.asc() if status == "pending" else Submission.id.desc()
    rows = await session.execute(stmt.order_by(order).limit(limit))
    return [(sub, email) for sub, email in rows]


async def _claim(
    session: AsyncSession, submission_id: int, status: str, reviewer_id: int | None, note: str | None, now: datetime
) -> Submission:
    """Move a pending submission to `status` with one conditional UPDATE (two reviewers cannot both win)."""
    claimed = await session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.status == "pending")
        .values(status=status, reviewer_id=reviewer_id, review_note=note or None, reviewed_at=now)
        .execution_options(synchronize_session=False)
    )
    sub = await session.get(Submission, submission_id, populate_existing=True)
    if sub is None:
        raise NotFound(f"no submission {submission_id}")
    if cast(Any, claimed).rowcount != 1:
        raise Conflict(f"submission {submission_id} was already {sub.status}", details={"status": sub.status})
    return sub


async def _pin_to(session: AsyncSession, report: Report, exploit_id: int, now: datetime) -> None:
    """Write the report's row on `exploit_id` with empty raw, so `store_reports` updates it in place."""
    values = {**report_values(report, exploit_id, now), "reported_at": report.reported_at or now, "raw": {}}
    await session.execute(insert(cast(Table, ReportRow.__table__)), [values])


async def _serialise_stores(session: AsyncSession) -> None:
    """PostgreSQL: the ingest workers' advisory lock, so no worker creates the same incident at once."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STORE_LOCK_KEY})


async def decide(
    session: AsyncSession,
    submission_id: int,
    decision: Decision,
    *,
    reviewer_id: int | None = None,
    note: str | None = None,
    alert_max_age: timedelta | None = None,
    now: datetime | None = None,
) -> Submission:
    """Approve (store as a `community` report; a correction lands on its target exploit) or reject (nothing
    of it reaches exploits or reports) one pending submission. An approval alerts subscribers when the
    incident is younger than `alert_max_age` (None: no alerts)."""
    now = now or utcnow()
    sub = await _claim(session, submission_id, decision, reviewer_id, note, now)
    if decision == "approved":
        notify_since = None if alert_max_age is None else now - alert_max_age
        await _store(session, sub, reviewer_id, notify_since, now)
    return sub


async def _store(
    session: AsyncSession, sub: Submission, reviewer_id: int | None, notify_since: datetime | None, now: datetime
) -> None:
    report = to_report(sub, reviewer_id=reviewer_id)
    problems = validate.problems(report, now=now)
    if problems:
        raise InvalidInput(f"submission {sub.id} cannot be stored: {'; '.join(problems)}")
    await _serialise_stores(session)
    target = sub.exploit_id if sub.kind == "correction" else None
    if target is not None and await session.get(Exploit, target) is not None:
        await _pin_to(session, report, target, now)
    await store_reports(session, [report], notify_since=notify_since, now=now)
    landed = await session.execute(
        select(ReportRow.exploit_id).where(ReportRow.source == SOURCE, ReportRow.source_ref == report.source_ref)
    )
    sub.exploit_id = landed.scalar_one()
    await session.flush()
