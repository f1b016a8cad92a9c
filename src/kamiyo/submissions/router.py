"""`/api/v1/submissions`: community reports of incidents, held for review (CONTRACT §8). Thin."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from kamiyo.accounts.deps import CurrentUser, per_user_limit
from kamiyo.api_deps import SessionDep, row_id
from kamiyo.errors import KamiyoError
from kamiyo.kit.ratelimit import parse_rate
from kamiyo.submissions import service
from kamiyo.submissions.schemas import SubmissionIn, SubmissionList, SubmissionOut

MAX_BODY_BYTES = 64 * 1024
SUBMIT_RATE = parse_rate("10/minute")


class PayloadTooLarge(KamiyoError):
    status = 413


async def read_bounded(request: Request, limit: int) -> None:
    """Read the body once, refusing more than `limit` bytes before it is all in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
    request._body = bytes(body)  # what FastAPI's body parsing reads next


class BoundedBodyRoute(APIRoute):
    """FastAPI reads a JSON body before any dependency runs, so the size cap sits in the route itself."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method in {"POST", "PUT", "PATCH"}:
                await read_bounded(request, MAX_BODY_BYTES)
            return await handler(request)

        return bounded


router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"], route_class=BoundedBodyRoute)


# A burst limit per user; the daily cap per tier is counted in the database by the service.
limit_submissions = per_user_limit("submissions", SUBMIT_RATE, "submissions")


@router.post(
    "",
    status_code=201,
    response_model=SubmissionOut,
    dependencies=[Depends(limit_submissions)],
    summary="Report an incident or a correction (held for review)",
    responses={
        409: {"description": "The same incident is already awaiting review, or the tx hash is another exploit's"},
        413: {"description": f"Body over {MAX_BODY_BYTES // 1024} KiB"},
    },
)
async def submit(response: Response, session: SessionDep, user: CurrentUser, body: SubmissionIn) -> SubmissionOut:
    """Any API key (or a dashboard session with its CSRF token). Answers 201 with the submission, `pending`
    until an admin reviews it; approval stores it as a report from source `community` with the evidence.
    A submission matching a stored exploit becomes a `correction` of it (`exploit_id`). Per UTC day: free 5,
    pro 20, team 50, enterprise 200 submissions (429 beyond); 10 a minute at most."""
    sub = await service.create_submission(session, user, body)
    response.headers["Location"] = f"/api/v1/submissions/{sub.id}"
    return SubmissionOut.model_validate(sub)


@router.get("", response_model=SubmissionList, summary="Your submissions, newest first")
async def list_submissions(session: SessionDep, user: CurrentUser) -> SubmissionList:
    subs = await service.list_for_user(session, user.id)
    return SubmissionList(
        data=[SubmissionOut.model_validate(s) for s in subs],
        daily_limit=service.daily_cap(user.tier),
        used_today=await service.used_today(session, user.id),
    )


@router.get("/{submission_id}", response_model=SubmissionOut, summary="One of your submissions")
async def get_submission(
    session: SessionDep, user: CurrentUser, submission_id: Annotated[int, row_id("Submission id.")]
) -> SubmissionOut:
    return SubmissionOut.model_validate(await service.get_for_user(session, user.id, submission_id))
