"""`/app/webhooks`: the webhook manager (team and enterprise plans).

The flows every endpoint kind shares (forms, enable/disable, test, delete, replay) are
`kamiyo.web.endpoint_pages`; here are the webhook's own parts: its pages, its URL field and secret rotation.
A signing secret is the one thing rendered straight from a POST (creation, rotation): it is shown once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.models import UserWebhook
from kamiyo.delivery.queue import WEBHOOKS
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import TIERS
from kamiyo.web.endpoint_pages import EndpointPages, PageQueryDep, acting_on, add_actions, submit_form
from kamiyo.web.page_deps import PagePost, PageUser, see_other
from kamiyo.web.render import account_html, render_html
from kamiyo.web.subscription_forms import (
    SubscriptionForm,
    filters_payload,
    stored_form,
)
from kamiyo.webhooks import service
from kamiyo.webhooks.schemas import WEBHOOK_IDS, WebhookCreate, WebhookUpdate

router = APIRouter(include_in_schema=False)
BASE = "/app/webhooks"
LOG_PAGE = 25
TEXT_FIELDS = ("url", "description")
WebhookId = Annotated[int, row_id(WEBHOOK_IDS.doc)]
NOTICES = {
    "saved": "Changes saved.",
    "enabled": "The endpoint is enabled: new exploits matching its filters are sent to it.",
    "disabled": "The endpoint is disabled: nothing is sent to it until you enable it again.",
    "deleted": "The endpoint was deleted.",
}


def webhook_plans() -> str:
    """The plans that include webhooks ("Team or Enterprise"), from the tier table."""
    return " or ".join(t.title for t in TIERS.values() if t.webhooks)


async def list_page(
    request: Request, session: SessionDep, user: User, *, status: int = 200, **context: Any
) -> Response:
    now = utcnow()
    hooks = [service.webhook_dict(h, now) for h in await endpoints.list_owned(session, UserWebhook, user.id)]
    return account_html(
        request,
        "webhooks.html",
        "Webhooks",
        user,
        status=status,
        hooks=hooks,
        plans=webhook_plans(),
        form=context.pop("form", None) or SubscriptionForm({"enabled": True}),
        **context,
    )


async def detail_page(
    request: Request,
    session: SessionDep,
    user: User,
    hook: UserWebhook,
    *,
    status: int = 200,
    cursor: str | None = None,
    **context: Any,
) -> Response:
    data = service.webhook_dict(hook, utcnow())
    log = await delivery.list_deliveries(session, WEBHOOKS, hook.id, limit=LOG_PAGE, cursor=cursor)
    return render_html(
        request,
        "webhook.html",
        status=status,
        title=f"Webhook {hook.id} · Kamiyo",
        user=user,
        hook=data,
        log=log,
        cursor=cursor,
        base=f"{BASE}/{hook.id}",
        form=context.pop("form", None) or stored_form(data["filters"], url=hook.url, description=hook.description),
        **context,
    )


@router.get(BASE)
async def webhooks(request: Request, session: SessionDep, user: PageUser, done: str = "") -> Response:
    return await list_page(request, session, user, notice=NOTICES.get(done))


@router.post(BASE)
async def create(post: PagePost) -> Response:
    request, session, settings, user = post.request, post.session, post.settings, post.user

    def payload(form: SubscriptionForm) -> dict[str, Any]:
        return {"url": form.text("url"), "description": form.text("description"), "enabled": form.enabled}

    async def act(data: WebhookCreate) -> Response:
        hook, secret = await service.create_webhook(session, settings, user.id, user.tier, data, utcnow())
        return await detail_page(request, session, user, hook, status=201, secret=secret, created=True)

    async def show(status: int, form: SubscriptionForm) -> Response:
        return await list_page(request, session, user, status=status, form=form)

    body = (WebhookCreate, lambda form: payload(form) | {"filters": filters_payload(form)})
    return await submit_form(post, TEXT_FIELDS, body, act, show)


@router.get(BASE + "/{webhook_id}")
async def webhook(
    request: Request,
    session: SessionDep,
    user: PageUser,
    webhook_id: WebhookId,
    query: PageQueryDep,
) -> Response:
    hook = await endpoints.get(session, service.WEBHOOK, user.id, webhook_id)
    notice = NOTICES.get(query.done)
    if query.replayed:
        notice = (
            f"Delivery {query.replayed} will be sent again now, with the same webhook-id. Reload to see the attempt."
        )
    return await detail_page(request, session, user, hook, cursor=query.cursor, notice=notice, tested=query.test)


@router.post(BASE + "/{webhook_id}")
async def edit(post: PagePost, webhook_id: WebhookId) -> Response:
    session = post.session
    hook = await endpoints.get(session, service.WEBHOOK, post.user.id, webhook_id)

    def payload(form: SubscriptionForm) -> dict[str, Any]:
        return {"url": form.text("url"), "description": form.text("description"), "filters": filters_payload(form)}

    async def act(data: WebhookUpdate) -> Response:
        await service.update_webhook(session, post.settings, hook, data, utcnow())
        return see_other(f"{BASE}/{hook.id}?done=saved")

    async def show(status: int, form: SubscriptionForm) -> Response:
        await session.refresh(hook)  # the page shows what is stored, the form what was typed
        return await detail_page(post.request, session, post.user, hook, status=status, form=form)

    return await submit_form(post, TEXT_FIELDS, (WebhookUpdate, payload), act, show)


async def _switch(session: AsyncSession, settings: Settings, hook: UserWebhook, on: bool) -> None:
    await service.update_webhook(session, settings, hook, WebhookUpdate(enabled=on), utcnow())


PAGES = EndpointPages(
    path=BASE + "/{webhook_id}",
    list_url=BASE,
    ids=WEBHOOK_IDS,
    kind_at=lambda _path: service.WEBHOOK,
    kind_of=lambda _hook: service.WEBHOOK,
    url=lambda hook: f"{BASE}/{hook.id}",
    detail=detail_page,
    switch=_switch,
)
add_actions(router, PAGES)


@router.post(BASE + "/{webhook_id}/rotate")
async def rotate(post: PagePost, webhook_id: WebhookId) -> Response:
    hook = await acting_on(post, PAGES, webhook_id)
    secret = await service.rotate_secret(post.session, post.settings, hook, utcnow())
    return await detail_page(post.request, post.session, post.user, hook, secret=secret, rotated=True)
