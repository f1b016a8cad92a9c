"""`/api/v1/{discord,telegram,slack,email}/channels`: the same routes for each kind, different create bodies."""

# No `from __future__ import annotations`: the per-kind body model is a closure variable FastAPI must see.

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request, Response

from kamiyo.accounts.deps import CurrentUser, limit_webhook_mutations, mutation_budget
from kamiyo.alerts import confirm, service
from kamiyo.alerts.schemas import (
    ChannelList,
    ChannelOut,
    ChannelUpdate,
    ConfirmBody,
    EmailChannelCreate,
    TelegramChannelCreate,
    WebhookChannelCreate,
)
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.delivery import service as delivery
from kamiyo.delivery.channels import RENDERERS, summarise
from kamiyo.delivery.queue import ALERTS
from kamiyo.errors import InvalidInput
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import get_tier
from kamiyo.webhooks.schemas import DeliveryOut, DeliveryPage, TestOutcome

ChannelId = Annotated[int, row_id("Channel id.")]
DeliveryId = Annotated[int, row_id("Alert id.")]
CREATE_MODELS: dict[str, type[Any]] = {
    "discord": WebhookChannelCreate,
    "slack": WebhookChannelCreate,
    "telegram": TelegramChannelCreate,
    "email": EmailChannelCreate,
}
TITLES = {"discord": "Discord", "slack": "Slack", "telegram": "Telegram", "email": "E-mail"}
Mutation = Depends(mutation_budget)  # changes, tests, replays and confirmations: 10 a minute per user
# A confirmation attempt counts even when its code is wrong (refused changes are otherwise given back):
# guesses must use up the budget.
Attempt = Depends(limit_webhook_mutations)


def kind_router(kind: str) -> APIRouter:
    """The routes of one channel kind. Closures keep `kind` fixed; the create body model differs per kind."""
    router = APIRouter(prefix=f"/api/v1/{kind}/channels", tags=["alerts"])
    title = TITLES[kind]
    create_model = CREATE_MODELS[kind]

    @router.get("", response_model=ChannelList, summary=f"Your {title} channels")
    async def list_(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        every = await service.list_channels(session, user.id)
        mine = [service.channel_dict(c) for c in every if c.kind == kind]
        return {"data": mine, "limit": get_tier(user.tier).channels, "used": len(every)}

    @router.post(
        "", status_code=201, response_model=ChannelOut, dependencies=[Mutation], summary=f"Add a {title} channel"
    )
    async def create(
        request: Request,
        user: CurrentUser,
        session: SessionDep,
        settings: SettingsDep,
        data: Annotated[create_model, Body()],  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        base = confirm.link_base(settings)
        channel = await service.create_channel(
            session, settings, user.id, user.tier, kind, data, utcnow(), confirm_base=base
        )
        return service.channel_dict(channel)

    @router.get("/{channel_id}", response_model=ChannelOut, summary=f"One {title} channel")
    async def read(channel_id: ChannelId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        return service.channel_dict(await service.get_channel(session, user.id, kind, channel_id))

    @router.patch(
        "/{channel_id}", response_model=ChannelOut, dependencies=[Mutation], summary=f"Change a {title} channel"
    )
    async def update(
        request: Request,
        channel_id: ChannelId,
        data: ChannelUpdate,
        user: CurrentUser,
        session: SessionDep,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        channel = await service.get_channel(session, user.id, kind, channel_id)
        base = confirm.link_base(settings)
        changed = await service.update_channel(session, settings, channel, data, utcnow(), confirm_base=base)
        return service.channel_dict(changed)

    @router.delete("/{channel_id}", status_code=204, dependencies=[Mutation], summary=f"Delete a {title} channel")
    async def delete(channel_id: ChannelId, user: CurrentUser, session: SessionDep) -> Response:
        await service.delete_channel(session, await service.get_channel(session, user.id, kind, channel_id))
        return Response(status_code=204)

    @router.post(
        "/{channel_id}/test",
        response_model=TestOutcome,
        dependencies=[Mutation],
        summary=f"Send a test alert to a {title} channel",
    )
    async def test(
        request: Request, channel_id: ChannelId, user: CurrentUser, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        confirm.require_confirmed(await service.get_channel(session, user.id, kind, channel_id))
        summary = summarise("webhook.test", await delivery.sample_exploit(session), settings.public_url, None)
        body = orjson.dumps(RENDERERS[kind](summary)).decode()
        db = get_database(request)
        result, row = await delivery.send_test(db, settings, ALERTS, channel_id, body, {"kind": kind})
        return {"success": result.ok, "delivery": row}

    @router.get("/{channel_id}/deliveries", response_model=DeliveryPage, summary="Alerts sent, newest first")
    async def deliveries(
        channel_id: ChannelId,
        user: CurrentUser,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        await service.get_channel(session, user.id, kind, channel_id)
        return await delivery.list_deliveries(session, ALERTS, channel_id, limit=limit, cursor=cursor)

    @router.post(
        "/{channel_id}/deliveries/{delivery_id}/retry",
        status_code=202,
        response_model=DeliveryOut,
        dependencies=[Mutation],
        summary="Send one alert again now",
    )
    async def retry(channel_id: ChannelId, delivery_id: DeliveryId, user: CurrentUser, session: SessionDep) -> Any:
        confirm.require_confirmed(await service.get_channel(session, user.id, kind, channel_id))
        return delivery.delivery_dict(await delivery.replay(session, ALERTS, channel_id, delivery_id, utcnow()))

    if confirm.needs_confirmation(kind):
        add_confirmation_routes(router, kind)
    return router


def add_confirmation_routes(router: APIRouter, kind: str) -> None:
    what = "the code sent to the chat" if kind == "telegram" else "the code at the end of the e-mail's link"

    @router.post(
        "/{channel_id}/confirm",
        response_model=ChannelOut,
        dependencies=[Attempt],
        summary=f"Confirm the channel with {what}",
    )
    async def confirm_channel(
        request: Request, channel_id: ChannelId, data: ConfirmBody, user: CurrentUser, session: SessionDep
    ) -> dict[str, Any]:
        channel = await service.get_channel(session, user.id, kind, channel_id)
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
        request: Request, channel_id: ChannelId, user: CurrentUser, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        channel = await service.get_channel(session, user.id, kind, channel_id)
        await confirm.resend(session, channel, confirm.link_base(settings), utcnow())
        return service.channel_dict(channel)


router = APIRouter()
for _kind in CREATE_MODELS:
    router.include_router(kind_router(_kind))
