"""The page flows every delivery endpoint has, made once: its create and edit forms, and its actions.

`submit_form` is the forms' flow. `add_actions(router, pages)` adds enable, disable, send a test, delete
and replay below `pages.path` (`/app/webhooks/{webhook_id}`, `/app/alerts/{kind}/{channel_id}`). Each
sends a visitor to the login page, loads the user's own endpoint (404 otherwise), checks the CSRF token
and the API's limit on webhook and channel changes (`guard`), then answers with a redirect
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

from kamiyo.accounts.deps import OptionalUser, Principal, RateLimited, limit_webhook_mutations
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery.endpoints import EndpointKind
from kamiyo.errors import KamiyoError
from kamiyo.kit.timeutil import utcnow
from kamiyo.web.account_pages import CSRF_MESSAGE, csrf_ok, see_other, to_login
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


async def guard(request: Request, user: User) -> tuple[int, str] | None:
    """CSRF, then the API's limit on webhook changes; (status, message) when the change must not go ahead."""
    if not await csrf_ok(request):
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
    fields: tuple[str, ...],
    body: tuple[type[BaseModel], Callable[[SubscriptionForm], dict[str, Any]]],
    act: Callable[[Any], Awaitable[Response]],
    show: Show,
) -> Response:
    """A submitted create or edit form: CSRF and the change limit, then the API's own body model (`body`: the
    model and the payload read from the form), then `act` on it; or `show` the form again, errors by their fields."""
    form = read_form(await request.form(), fields)
    if refused := await guard(request, user):
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
    request: Request, session: AsyncSession, user: User | None, pages: EndpointPages, endpoint_id: int
) -> tuple[User, Any] | Response:
    """The user and the endpoint an action is for, or the answer instead: the login page, or the refused action."""
    if user is None:
        return to_login(request)
    row = await pages.load(session, user, request.path_params, endpoint_id)
    if refused := await guard(request, user):
        return await pages.detail(request, session, user, row, status=refused[0], action_error=refused[1])
    return user, row


async def sendable(
    request: Request, session: AsyncSession, user: User | None, pages: EndpointPages, endpoint_id: int
) -> tuple[User, Any] | Response:
    """As `acting_on`, and refused (with the reason on the page) while nothing may be sent to it: unconfirmed."""
    found = await acting_on(request, session, user, pages, endpoint_id)
    if isinstance(found, Response):
        return found
    try:
        pages.kind_of(found[1]).ready(found[1])
    except KamiyoError as exc:
        message = exc.message[:1].upper() + exc.message[1:] + "."
        return await pages.detail(request, session, found[0], found[1], status=exc.status, action_error=message)
    return found


def add_actions(router: APIRouter, pages: EndpointPages) -> None:
    EndpointId = Annotated[int, row_id(pages.id_doc, pages.id_name)]

    async def switch(
        request: Request, session: AsyncSession, settings: Settings, user: User | None, at: int, on: bool
    ) -> Response:
        found = await acting_on(request, session, user, pages, at)
        if isinstance(found, Response):
            return found
        await pages.switch(session, settings, found[1], on)
        return see_other(f"{pages.url(found[1])}?done={'enabled' if on else 'disabled'}")

    @router.post(pages.path + "/enable")
    async def enable(
        request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser, endpoint_id: EndpointId
    ) -> Response:
        return await switch(request, session, settings, user, endpoint_id, on=True)

    @router.post(pages.path + "/disable")
    async def disable(
        request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser, endpoint_id: EndpointId
    ) -> Response:
        return await switch(request, session, settings, user, endpoint_id, on=False)

    @router.post(pages.path + "/delete")
    async def delete(request: Request, session: SessionDep, user: OptionalUser, endpoint_id: EndpointId) -> Response:
        found = await acting_on(request, session, user, pages, endpoint_id)
        if isinstance(found, Response):
            return found
        await endpoints.delete(session, found[1])
        return see_other(f"{pages.list_url}?done=deleted")

    add_sending_actions(router, pages)


def add_sending_actions(router: APIRouter, pages: EndpointPages) -> None:
    """A test now, and a replay of one delivery: refused while nothing may be sent to the endpoint."""
    EndpointId = Annotated[int, row_id(pages.id_doc, pages.id_name)]
    DeliveryId = Annotated[int, row_id(pages.delivery_doc)]

    @router.post(pages.path + "/test")
    async def send_test(
        request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser, endpoint_id: EndpointId
    ) -> Response:
        """A test message now, rendered and sent as the API's `…/test` does; the log shows the outcome."""
        found = await sendable(request, session, user, pages, endpoint_id)
        if isinstance(found, Response):
            return found
        row = found[1]
        _, sent = await endpoints.send_test(get_database(request), settings, session, pages.kind_of(row), row)
        return see_other(f"{pages.url(row)}?test={sent['id']}")

    @router.post(pages.path + "/deliveries/{delivery_id}/replay")
    async def replay(
        request: Request, session: SessionDep, user: OptionalUser, endpoint_id: EndpointId, delivery_id: DeliveryId
    ) -> Response:
        found = await sendable(request, session, user, pages, endpoint_id)
        if isinstance(found, Response):
            return found
        who, row = found
        try:
            await endpoints.replay(session, pages.kind_of(row), row, delivery_id, utcnow())
        except KamiyoError as exc:
            if exc.status == 404:
                raise
            return await pages.detail(request, session, who, row, status=exc.status, action_error=exc.message)
        return see_other(f"{pages.url(row)}?replayed={delivery_id}")
