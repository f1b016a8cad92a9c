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

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import Principal, RateLimited, limit_webhook_mutations
from kamiyo.api_deps import get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery.endpoints import EndpointIds, EndpointKind
from kamiyo.errors import KamiyoError
from kamiyo.kit.timeutil import utcnow
from kamiyo.web.page_deps import CSRF_MESSAGE, Answered, PagePost, Posted, see_other
from kamiyo.web.subscription_forms import SubscriptionForm, read_form, service_error, validate


@dataclass(frozen=True, slots=True)
class EndpointPages:
    """Where one kind's pages are and how they show an endpoint."""

    path: str  # of one endpoint's page, with its id as `{ids.name}`
    list_url: str
    ids: EndpointIds
    kind_at: Callable[[Mapping[str, Any]], EndpointKind]  # the kind the path's parameters name
    kind_of: Callable[[Any], EndpointKind]
    url: Callable[[Any], str]  # an endpoint's page
    detail: Callable[..., Awaitable[Response]]  # (request, session, user, row, *, status, **context): its page
    switch: Callable[[AsyncSession, Settings, Any, bool], Awaitable[Any]]  # enable or disable it


@dataclass(frozen=True, slots=True)
class PageQuery:
    """An endpoint page's query: what was just `done` (its notice), the test just sent, the delivery just
    replayed, and where the delivery log starts."""

    done: str
    test: int | None
    replayed: int | None
    cursor: str | None


def page_query(
    done: str = "",
    test: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    replayed: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageQuery:
    return PageQuery(done, test, replayed, cursor)


PageQueryDep = Annotated[PageQuery, Depends(page_query)]


async def guard(post: Posted) -> tuple[int, str] | None:
    """CSRF, then the API's limit on webhook changes; (status, message) when the change must not go ahead."""
    if not post.form.csrf_ok:
        return 403, CSRF_MESSAGE
    user = post.user
    try:
        await limit_webhook_mutations(post.request, Principal(user.id, user.email, user.tier, "session"))
    except RateLimited as exc:
        return exc.status, exc.message[:1].upper() + exc.message[1:] + "."
    return None


Show = Callable[[int, SubscriptionForm], Awaitable[Response]]


async def submit_form(
    post: Posted,
    fields: tuple[str, ...],
    body: tuple[type[BaseModel], Callable[[SubscriptionForm], dict[str, Any]]],
    act: Callable[[Any], Awaitable[Response]],
    show: Show,
) -> Response:
    """A submitted create or edit form: CSRF and the change limit, then the API's own body model (`body`: the
    model and the payload read from the form), then `act` on it; or `show` the form again, errors by their fields."""
    form = read_form(post.form.data, fields)
    if refused := await guard(post):
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


async def acting_on(post: Posted, pages: EndpointPages, endpoint_id: int, *, sending: bool = False) -> Any:
    """The user's own endpoint an action is for (404 otherwise), once the action may go ahead; else the request is
    `Answered` with the endpoint's page and the reason. `sending`: refused too while nothing may be sent to it."""
    kind = pages.kind_at(post.request.path_params)
    row = await endpoints.get(post.session, kind, post.user.id, endpoint_id)  # the user's own, else 404
    refused = await guard(post)
    if refused is None and sending:
        try:
            pages.kind_of(row).ready(row)
        except KamiyoError as exc:
            refused = exc.status, exc.message[:1].upper() + exc.message[1:] + "."
    if refused:
        raise Answered(await refuse(post, pages, row, *refused))
    return row


async def refuse(post: Posted, pages: EndpointPages, row: Any, status: int, reason: str) -> Response:
    """The endpoint's page, with why the action was not done."""
    return await pages.detail(post.request, post.session, post.user, row, status=status, action_error=reason)


def add_actions(router: APIRouter, pages: EndpointPages) -> None:
    EndpointId = Annotated[int, row_id(pages.ids.doc, pages.ids.name)]
    for on in (True, False):
        add_switch(router, pages, on)

    @router.post(pages.path + "/delete")
    async def delete(post: PagePost, endpoint_id: EndpointId) -> Response:
        await endpoints.delete(post.session, await acting_on(post, pages, endpoint_id))
        return see_other(f"{pages.list_url}?done=deleted")

    add_sending_actions(router, pages)


def add_switch(router: APIRouter, pages: EndpointPages, on: bool) -> None:
    """`…/enable` (`on`) or `…/disable`."""
    EndpointId = Annotated[int, row_id(pages.ids.doc, pages.ids.name)]

    @router.post(pages.path + ("/enable" if on else "/disable"))
    async def switch(post: PagePost, endpoint_id: EndpointId) -> Response:
        row = await acting_on(post, pages, endpoint_id)
        await pages.switch(post.session, post.settings, row, on)
        return see_other(f"{pages.url(row)}?done={'enabled' if on else 'disabled'}")


def add_sending_actions(router: APIRouter, pages: EndpointPages) -> None:
    """A test now, and a replay of one delivery: refused while nothing may be sent to the endpoint."""
    EndpointId = Annotated[int, row_id(pages.ids.doc, pages.ids.name)]
    DeliveryId = Annotated[int, row_id(pages.ids.delivery_doc)]

    @router.post(pages.path + "/test")
    async def send_test(post: PagePost, endpoint_id: EndpointId) -> Response:
        """A test message now, rendered and sent as the API's `…/test` does; the log shows the outcome."""
        row = await acting_on(post, pages, endpoint_id, sending=True)
        db, kind = get_database(post.request), pages.kind_of(row)
        _, sent = await endpoints.send_test(db, post.settings, post.session, kind, row)
        return see_other(f"{pages.url(row)}?test={sent['id']}")

    @router.post(pages.path + "/deliveries/{delivery_id}/replay")
    async def replay(post: PagePost, endpoint_id: EndpointId, delivery_id: DeliveryId) -> Response:
        row = await acting_on(post, pages, endpoint_id, sending=True)
        try:
            await endpoints.replay(post.session, pages.kind_of(row), row, delivery_id, utcnow())
        except KamiyoError as exc:
            if exc.status == 404:
                raise
            return await refuse(post, pages, row, exc.status, exc.message)
        return see_other(f"{pages.url(row)}?replayed={delivery_id}")
