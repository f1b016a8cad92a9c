"""`/api/v1/{discord,telegram,slack,email}/channels`: the shared endpoint routes for each kind, with its own
create body, and the confirmation routes of e-mail and Telegram channels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import CurrentUser, limit_webhook_mutations
from kamiyo.accounts.models import User
from kamiyo.alerts import confirm, service
from kamiyo.alerts.schemas import (
    CHANNEL_IDS,
    ChannelList,
    ChannelOut,
    ChannelUpdate,
    ConfirmBody,
    EmailChannelCreate,
    TelegramChannelCreate,
    WebhookChannelCreate,
)
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery.endpoint_router import EndpointApi, Mutation, endpoint_router
from kamiyo.delivery.models import AlertChannel
from kamiyo.errors import InvalidInput
from kamiyo.kit.timeutil import utcnow

ChannelId = Annotated[int, row_id(CHANNEL_IDS.doc)]
CREATE_MODELS: dict[str, Any] = {
    "discord": WebhookChannelCreate,
    "slack": WebhookChannelCreate,
    "telegram": TelegramChannelCreate,
    "email": EmailChannelCreate,
}
TITLES = {"discord": "Discord", "slack": "Slack", "telegram": "Telegram", "email": "E-mail"}
# A confirmation attempt counts even when its code is wrong (refused changes are otherwise given back):
# guesses must use up the budget.
Attempt = Depends(limit_webhook_mutations)


async def _update(session: AsyncSession, settings: Settings, channel: AlertChannel, data: ChannelUpdate) -> Any:
    return await service.update_channel(
        session, settings, channel, data, utcnow(), confirm_base=confirm.link_base(settings)
    )


def channel_api(kind: str) -> EndpointApi:
    title = TITLES[kind]

    async def create(session: AsyncSession, settings: Settings, user: User, data: Any) -> dict[str, Any]:
        base = confirm.link_base(settings)
        channel = await service.create_channel(
            session, settings, user.id, user.tier, kind, data, utcnow(), confirm_base=base
        )
        return service.channel_dict(channel)

    return EndpointApi(
        kind=service.KINDS[kind],
        prefix=f"/api/v1/{kind}/channels",
        tag="alerts",
        create_body=CREATE_MODELS[kind],
        created=ChannelOut,
        create=create,
        out=ChannelOut,
        listing=ChannelList,
        update_body=ChannelUpdate,
        update=_update,
        ids=CHANNEL_IDS,
        summaries={
            "list": f"Your {title} channels",
            "create": f"Add a {title} channel",
            "read": f"One {title} channel",
            "update": f"Change a {title} channel",
            "delete": f"Delete a {title} channel",
            "test": f"Send a test alert to a {title} channel",
            "deliveries": "Alerts sent, newest first",
            "retry": "Send one alert again now",
        },
    )


def add_confirmation_routes(router: APIRouter, kind: str) -> None:
    what = "the code sent to the chat" if kind == "telegram" else "the code at the end of the e-mail's link"
    channels = service.KINDS[kind]

    @router.post(
        "/{channel_id}/confirm",
        response_model=ChannelOut,
        dependencies=[Attempt],
        summary=f"Confirm the channel with {what}",
    )
    async def confirm_channel(
        request: Request, channel_id: ChannelId, data: ConfirmBody, user: CurrentUser, session: SessionDep
    ) -> dict[str, Any]:
        channel = await endpoints.get(session, channels, user.id, channel_id)
        if not await confirm.confirm(session, channel, data.code, utcnow()):
            await confirm.count_failure(get_database(request), channel.id)
            raise InvalidInput("code: not the code sent to this channel", details=[{"field": "code"}])
        return service.channel_dict(channel)

    @router.post(
        "/{channel_id}/resend-confirmation",
        status_code=202,
        response_model=ChannelOut,
        dependencies=[Mutation],
        summary="Send the confirmation again (once a minute, five times a day)",
    )
    async def resend(
        channel_id: ChannelId, user: CurrentUser, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        channel = await endpoints.get(session, channels, user.id, channel_id)
        await confirm.resend(session, channel, confirm.link_base(settings), utcnow())
        return service.channel_dict(channel)


router = APIRouter()
for _kind in CREATE_MODELS:
    _router = endpoint_router(channel_api(_kind))
    if confirm.needs_confirmation(_kind):
        add_confirmation_routes(_router, _kind)
    router.include_router(_router)
