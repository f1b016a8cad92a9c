"""The page flows every delivery endpoint has, made once: its create and edit forms, and its actions.

`submit_form` is the forms' flow. `add_actions(router, pages)` adds enable, disable, send a test, delete
and replay below `pages.path` (`/app/webhooks/{webhook_id}`, `/app/alerts/{kind}/{channel_id}`). Each
is for a logged-in user (`PageUser`), loads the user's own endpoint (404 otherwise), checks the form's CSRF
token and the API's limit on webhook and channel changes (`guard`), then answers with a redirect
(post/redirect/get), or with the endpoint's page and the reason.
"""

# No `from __future__ import annotations`: the per-kind id parameters are closure variables FastAPI must see.

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import Principal, RateLimited, limit_webhook_mutations
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery.endpoints import EndpointKind
from kamiyo.errors import KamiyoError
from kamiyo.kit.timeutil import utcnow
from kamiyo.web.page_deps import CSRF_MESSAGE, Answered, PageForm, PageUser, SubmittedForm, see_other
from kamiyo.web.subscription_forms import SubscriptionForm, read_form, service_error, validate

Load = Callable[[AsyncSession, User, Mapping[str, Any], int], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class EndpointPages:
    """Where one kind's pages are and how they show an endpoint."""

    path: str  # of one endpoint's page, with its id as `{id_name}`
    list_url: str
    id_name: str
    id_doc: str
    delivery_doc: str
    load: Load  # the user's own endpoint named by the path's parameters and id (404 otherwise)
    kind_of: Callable[[Any], EndpointKind]
    url: Callable[[Any], str]  # an endpoint's page
    detail: Callable[..., Awaitable[Response]]  # (request, session, user, row, *, status, **context): its page
    switch: Callable[[AsyncSession, Settings, Any, bool], Awaitable[Any]]  # enable or disable it


async def guard(request: Request, user: User, form: SubmittedForm) -> tuple[int, str] | None:
    """CSRF, then the API's limit on webhook changes; (status, message) when the change must not go ahead."""
    if not form.csrf_ok:
        return 403, CSRF_MESSAGE
    try:
        await limit_webhook_mutations(request, Principal(user.id, user.email, user.tier, "session"))
    except RateLimited as exc:
        return exc.status, exc.message[:1].upper() + exc.message[1:] + "."
    return None


Show = Callable[[int, SubscriptionForm], Awaitable[Response]]


async def submit_form(
    request: Request,
    user: User,
    submitted: SubmittedForm,
    fields: tuple[str, ...],
    body: tuple[type[BaseModel], Callable[[SubscriptionForm], dict[str, Any]]],
    act: Callable[[Any], Awaitable[Response]],
    show: Show,
) -> Response:
    """A submitted create or edit form: CSRF and the change limit, then the API's own body model (`body`: the
    model and the payload read from the form), then `act` on it; or `show` the form again, errors by their fields."""
    form = read_form(submitted.data, fields)
    if refused := await guard(request, user, submitted):
        form.errors["form"] = refused[1]
        return await show(refused[0], form)
    data = validate(body[0], body[1](form), form)
    if data is None:
        return await show(422, form)
    try:
        return await act(data)
    except KamiyoError as exc:
        service_error(exc, form)
        return await show(exc.status, form)


async def acting_on(
    request: Request,
    session: AsyncSession,
    user: User,
    form: SubmittedForm,
    pages: EndpointPages,
    endpoint_id: int,
    *,
    sending: bool = False,
) -> Any:
    """The user's own endpoint an action is for (404 otherwise), once the action may go ahead; else the request is
    `Answered` with the endpoint's page and the reason. `sending`: refused too while nothing may be sent to it."""
    row = await pages.load(session, user, request.path_params, endpoint_id)
    refused = await guard(request, user, form)
    if refused is None and sending:
        try:
            pages.kind_of(row).ready(row)
        except KamiyoError as exc:
            refused = exc.status, exc.message[:1].upper() + exc.message[1:] + "."
    if refused:
        raise Answered(await pages.detail(request, session, user, row, status=refused[0], action_error=refused[1]))
    return row


def add_actions(router: APIRouter, pages: EndpointPages) -> None:
    EndpointId = Annotated[int, row_id(pages.id_doc, pages.id_name)]

    async def switch(
        request: Request, session: AsyncSession, settings: Settings, user: User, form: SubmittedForm, at: int, on: bool
    ) -> Response:
        row = await acting_on(request, session, user, form, pages, at)
        await pages.switch(session, settings, row, on)
        return see_other(f"{pages.url(row)}?done={'enabled' if on else 'disabled'}")

    @router.post(pages.path + "/enable")
    async def enable(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        user: PageUser,
        form: PageForm,
        endpoint_id: EndpointId,
    ) -> Response:
        return await switch(request, session, settings, user, form, endpoint_id, on=True)

    @router.post(pages.path + "/disable")
    async def disable(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        user: PageUser,
        form: PageForm,
        endpoint_id: EndpointId,
    ) -> Response:
        return await switch(request, session, settings, user, form, endpoint_id, on=False)

    @router.post(pages.path + "/delete")
    async def delete(
        request: Request, session: SessionDep, user: PageUser, form: PageForm, endpoint_id: EndpointId
    ) -> Response:
        await endpoints.delete(session, await acting_on(request, session, user, form, pages, endpoint_id))
        return see_other(f"{pages.list_url}?done=deleted")

    add_sending_actions(router, pages)


def add_sending_actions(router: APIRouter, pages: EndpointPages) -> None:
    """A test now, and a replay of one delivery: refused while nothing may be sent to the endpoint."""
    EndpointId = Annotated[int, row_id(pages.id_doc, pages.id_name)]
    DeliveryId = Annotated[int, row_id(pages.delivery_doc)]

    @router.post(pages.path + "/test")
    async def send_test(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        user: PageUser,
        form: PageForm,
        endpoint_id: EndpointId,
    ) -> Response:
        """A test message now, rendered and sent as the API's `…/test` does; the log shows the outcome."""
        row = await acting_on(request, session, user, form, pages, endpoint_id, sending=True)
        _, sent = await endpoints.send_test(get_database(request), settings, session, pages.kind_of(row), row)
        return see_other(f"{pages.url(row)}?test={sent['id']}")

    @router.post(pages.path + "/deliveries/{delivery_id}/replay")
    async def replay(
        request: Request,
        session: SessionDep,
        user: PageUser,
        form: PageForm,
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
    ) -> Response:
        row = await acting_on(request, session, user, form, pages, endpoint_id, sending=True)
        try:
            await endpoints.replay(session, pages.kind_of(row), row, delivery_id, utcnow())
        except KamiyoError as exc:
            if exc.status == 404:
                raise
            return await pages.detail(request, session, user, row, status=exc.status, action_error=exc.message)
        return see_other(f"{pages.url(row)}?replayed={delivery_id}")
