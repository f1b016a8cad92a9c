"""Admin pages: the review queue of community submissions (approve into a `community` report, or reject).

Only users with `is_admin` (`kamiyo users set-admin EMAIL`) see them; others get 403, visitors the login.
Forms carry the CSRF token and follow post/redirect/get. Submitted text is plain text: the templates'
autoescape renders it inert, and evidence links are only ever http(s) (checked when submitted).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.errors import KamiyoError
from kamiyo.exploits.service import exploits_by_ids
from kamiyo.submissions import service
from kamiyo.submissions.models import STATUSES
from kamiyo.web.page_deps import CSRF_MESSAGE, AdminUser, PageForm, see_other
from kamiyo.web.render import render_html

router = APIRouter(include_in_schema=False)
QUEUE = "/app/admin/submissions"
NOTICES = {
    "approved": "Submission {id} approved: it is now a community report.",
    "rejected": "Submission {id} rejected.",
}


async def queue_page(
    request: Request, session: SessionDep, user: User, status: str, *, code: int = 200, **context: Any
) -> Response:
    rows = await service.review_queue(session, None if status == "all" else status, limit=200)
    targets = await exploits_by_ids(session, sorted({s.exploit_id for s, _ in rows if s.exploit_id}))
    return render_html(
        request,
        "admin/submissions.html",
        status=code,
        title="Review submissions · Kamiyo",
        user=user,
        rows=rows,
        targets={t["id"]: t for t in targets},
        current=status,
        statuses=(*STATUSES, "all"),
        errors=context.pop("errors", {}),
        **context,
    )


@router.get(QUEUE)
async def review_queue(
    request: Request, session: SessionDep, user: AdminUser, status: str = "pending", done: str = "", id: int = 0
) -> Response:
    status = status if status in (*STATUSES, "all") else "pending"
    notice = NOTICES[done].format(id=id) if done in NOTICES else None
    return await queue_page(request, session, user, status, notice=notice)


SubmissionId = Annotated[int, row_id("Submission id.")]


def add_decision(action: str, decision: service.Decision) -> None:
    """`…/approve` or `…/reject` one submission, with the reviewer's note."""

    @router.post(QUEUE + "/{submission_id}/" + action)
    async def decide(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        user: AdminUser,
        form: PageForm,
        submission_id: SubmissionId,
    ) -> Response:
        note = form.text("note")[:2000] or None
        if not form.csrf_ok:
            return await queue_page(request, session, user, "pending", code=403, errors={"form": CSRF_MESSAGE})
        try:  # a session of its own that writes first (SQLite never upgrades a stale read snapshot)
            async with get_database(request).session() as writer:
                await service.decide(
                    writer,
                    submission_id,
                    decision,
                    reviewer_id=user.id,
                    note=note,
                    alert_max_age=settings.alert_max_age_delta,
                )
        except KamiyoError as exc:
            return await queue_page(request, session, user, "pending", code=exc.status, errors={"form": exc.message})
        return see_other(f"{QUEUE}?done={decision}&id={submission_id}")


add_decision("approve", "approved")
add_decision("reject", "rejected")
