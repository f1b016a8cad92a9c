"""`/app/alerts`: Discord, Telegram, Slack and e-mail channels, on the flows of `kamiyo.web.endpoint_pages`.

Every plan has channels (tiers.py limits them, all kinds together). Forms are validated with the API's
own bodies and `kamiyo.alerts.service`; a channel's destination is stored encrypted and only its masked
hint is ever shown again, so the edit form leaves it unchanged unless a new one is typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import OptionalUser
from kamiyo.accounts.models import User
from kamiyo.alerts import confirm, service
from kamiyo.alerts.schemas import (
    CHANNEL_IDS,
    ChannelUpdate,
    EmailChannelCreate,
    TelegramChannelCreate,
    WebhookChannelCreate,
)
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.models import AlertChannel
from kamiyo.delivery.queue import ALERTS
from kamiyo.errors import KamiyoError, NotFound
from kamiyo.kit.timeutil import utcnow
from kamiyo.web.endpoint_pages import EndpointPages, PageQueryDep, acting_on, add_actions, refuse, submit_form
from kamiyo.web.page_deps import PagePost, PageUser, see_other
from kamiyo.web.render import account_html, render_html
from kamiyo.web.subscription_forms import (
    SubscriptionForm,
    filters_payload,
    stored_form,
)

router = APIRouter(include_in_schema=False)
BASE = "/app/alerts"
LOG_PAGE = 25
ChannelId = Annotated[int, row_id(CHANNEL_IDS.doc)]
NOTICES = {
    "saved": "Changes saved.",
    "enabled": "The channel is enabled: new exploits matching its filters are sent to it.",
    "disabled": "The channel is disabled: nothing is sent to it until you enable it again.",
    "deleted": "The channel was deleted.",
    "confirmed": "The channel is confirmed: new exploits matching its filters are sent to it.",
    "resent": "A new confirmation is on its way; the previous one no longer works.",
}
CREATED = "Channel added. Send a test alert to check that it arrives."
CREATED_UNCONFIRMED = {
    "email": "Channel added. We sent a confirmation link to the address: alerts start once it is opened.",
    "telegram": "Channel added. We sent a code to the chat: enter it below to start receiving alerts.",
}


@dataclass(frozen=True, slots=True)
class Kind:
    """How the pages ask for one kind of channel's destination."""

    name: str
    title: str
    field: str  # the API body field (and form field) holding the destination
    label: str
    input_type: str
    placeholder: str
    hint: str
    model: type[BaseModel]
    needs: str | None = None  # the setting without which the server cannot send this kind
    needs_env: str | None = None  # ... as the operator spells it

    def available(self, settings: Settings) -> bool:
        return self.needs is None or bool(getattr(settings, self.needs))


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "discord", "Discord", "webhook_url", "Discord webhook URL", "url",
            "https://discord.com/api/webhooks/…", "Channel settings → Integrations → Webhooks",
            WebhookChannelCreate,
        ),
        Kind(
            "telegram", "Telegram", "chat_id", "Telegram chat", "text",
            "-1001234567890 or @yourchannel", "add the server's bot to the chat first",
            TelegramChannelCreate, "telegram_bot_token", "TELEGRAM_BOT_TOKEN",
        ),
        Kind(
            "slack", "Slack", "webhook_url", "Slack webhook URL", "url",
            "https://hooks.slack.com/services/…", "an incoming webhook of your Slack app",
            WebhookChannelCreate,
        ),
        Kind(
            "email", "E-mail", "address", "E-mail address", "email",
            "alerts@example.com", "each alert is one message", EmailChannelCreate, "smtp_url", "KAMIYO_SMTP_URL",
        ),
    )
}  # fmt: skip


def kind_of(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise NotFound(f"no channel kind {name!r}: one of {', '.join(KINDS)}")
    return found


async def list_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: User, kind: Kind, **context: Any
) -> Response:
    channels = await endpoints.list_owned(session, AlertChannel, user.id)
    return account_html(
        request,
        "alerts.html",
        "Alerts",
        user,
        status=context.pop("status", 200),
        channels=[service.channel_dict(c) for c in channels],
        kinds=KINDS,
        kind=kind,
        available=kind.available(settings),
        form=context.pop("form", None) or SubscriptionForm({"enabled": True}),
        **context,
    )


async def detail_page(
    request: Request, session: SessionDep, user: User, channel: AlertChannel, **context: Any
) -> Response:
    data = service.channel_dict(channel)
    cursor = context.pop("cursor", None)
    log = await delivery.list_deliveries(session, ALERTS, channel.id, limit=LOG_PAGE, cursor=cursor)
    return render_html(
        request,
        "alert.html",
        status=context.pop("status", 200),
        title=f"{KINDS[channel.kind].title} channel {channel.id} · Kamiyo",
        user=user,
        channel=data,
        kind=KINDS[channel.kind],
        log=log,
        cursor=cursor,
        base=f"{BASE}/{channel.kind}/{channel.id}",
        form=context.pop("form", None) or stored_form(data["filters"], description=channel.description),
        **context,
    )


@router.get(BASE)
async def alerts(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PageUser,
    kind: str = "discord",
    done: str = "",
) -> Response:
    chosen = KINDS.get(kind, KINDS["discord"])
    return await list_page(request, session, settings, user, chosen, notice=NOTICES.get(done))


@router.post(BASE + "/{kind}")
async def create(post: PagePost, kind: str) -> Response:
    info, session, settings, user = kind_of(kind), post.session, post.settings, post.user

    def payload(form: SubscriptionForm) -> dict[str, Any]:
        fields = {info.field: form.text(info.field), "description": form.text("description")}
        return fields | {"enabled": form.enabled, "filters": filters_payload(form)}

    async def act(data: Any) -> Response:
        base = confirm.link_base(settings)
        channel = await service.create_channel(
            session, settings, user.id, user.tier, info.name, data, utcnow(), confirm_base=base
        )
        return see_other(f"{BASE}/{info.name}/{channel.id}?done=created")

    async def show(status: int, form: SubscriptionForm) -> Response:
        return await list_page(post.request, session, settings, user, info, status=status, form=form)

    return await submit_form(post, (info.field, "description"), (info.model, payload), act, show)


@router.get(BASE + "/{kind}/{channel_id}")
async def channel_view(
    request: Request,
    session: SessionDep,
    user: PageUser,
    kind: str,
    channel_id: ChannelId,
    query: PageQueryDep,
) -> Response:
    channel = await endpoints.get(session, service.KINDS[kind_of(kind).name], user.id, channel_id)
    notice = CREATED_UNCONFIRMED.get(kind, CREATED) if query.done == "created" else NOTICES.get(query.done)
    if query.replayed:
        notice = f"Alert {query.replayed} will be sent again now. Reload to see the outcome."
    return await detail_page(request, session, user, channel, cursor=query.cursor, notice=notice, tested=query.test)


@router.post(BASE + "/{kind}/{channel_id}")
async def edit(post: PagePost, kind: str, channel_id: ChannelId) -> Response:
    info, session, settings = kind_of(kind), post.session, post.settings
    channel = await endpoints.get(session, service.KINDS[info.name], post.user.id, channel_id)

    def payload(form: SubscriptionForm) -> dict[str, Any]:
        fields: dict[str, Any] = {"description": form.text("description"), "filters": filters_payload(form)}
        if form.text(info.field):  # empty: keep the stored destination (only its masked hint is shown)
            fields[info.field] = form.text(info.field)
        return fields

    async def act(data: ChannelUpdate) -> Response:
        base = confirm.link_base(settings)
        await service.update_channel(session, settings, channel, data, utcnow(), confirm_base=base)
        return see_other(f"{BASE}/{info.name}/{channel.id}?done=saved")

    async def show(status: int, form: SubscriptionForm) -> Response:
        return await detail_page(post.request, session, post.user, channel, status=status, form=form)

    return await submit_form(post, (info.field, "description"), (ChannelUpdate, payload), act, show)


async def _switch(session: AsyncSession, settings: Settings, channel: AlertChannel, on: bool) -> None:
    await service.update_channel(session, settings, channel, ChannelUpdate(enabled=on), utcnow())


PAGES = EndpointPages(
    path=BASE + "/{kind}/{channel_id}",
    list_url=BASE,
    ids=CHANNEL_IDS,
    kind_at=lambda path: service.KINDS[kind_of(path["kind"]).name],
    kind_of=lambda channel: service.KINDS[channel.kind],
    url=lambda channel: f"{BASE}/{channel.kind}/{channel.id}",
    detail=detail_page,
    switch=_switch,
)
add_actions(router, PAGES)


@router.post(BASE + "/{kind}/{channel_id}/confirm")
async def confirm_code(post: PagePost, kind: str, channel_id: ChannelId) -> Response:
    """The code the Telegram chat received (or an e-mail link's code), typed on the channel page."""
    channel = await acting_on(post, PAGES, channel_id)
    code = str(post.form.data.get("code") or "")[:200]
    try:
        confirmed = await confirm.confirm(post.session, channel, code, utcnow())
    except KamiyoError as exc:
        return await refuse(post, PAGES, channel, exc.status, exc.message + ".")
    if not confirmed:
        await confirm.count_failure(get_database(post.request), channel.id)
        message = "That is not the code sent to this channel. Check it, or send a new one."
        return await refuse(post, PAGES, channel, 422, message)
    return see_other(f"{BASE}/{channel.kind}/{channel.id}?done=confirmed")


@router.post(BASE + "/{kind}/{channel_id}/resend")
async def resend_confirmation(post: PagePost, kind: str, channel_id: ChannelId) -> Response:
    channel = await acting_on(post, PAGES, channel_id)
    try:
        await confirm.resend(post.session, channel, confirm.link_base(post.settings), utcnow())
    except KamiyoError as exc:
        return await refuse(post, PAGES, channel, exc.status, exc.message + ".")
    return see_other(f"{BASE}/{channel.kind}/{channel.id}?done=resent")


@router.get(confirm.LINK_PATH + "{code}")
async def confirm_link(request: Request, session: SessionDep, user: OptionalUser, code: str) -> Response:
    """The link in a confirmation e-mail: opening it confirms the address (no login: it is the address's owner)."""
    channel = await confirm.by_link(session, code[:200])
    try:
        confirmed = channel is not None and await confirm.confirm(session, channel, code, utcnow())
    except KamiyoError:  # too many wrong codes were typed for it: a new confirmation is needed
        confirmed = False
    if channel is None or not confirmed:
        return render_html(
            request,
            "alert_confirm.html",
            status=404,
            title="Confirmation link not valid · Kamiyo",
            user=user,
            heading="This confirmation link is not valid",
            message="It was used already, a newer one replaced it, or the channel was deleted.",
        )
    return render_html(
        request,
        "alert_confirm.html",
        title="Address confirmed · Kamiyo",
        user=user,
        heading="Address confirmed",
        message=f"Kamiyo will send exploit alerts to {channel.target_hint}.",
    )
