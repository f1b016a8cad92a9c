"""`/api/v1/user-webhooks`: outgoing webhook endpoints of the caller (team and enterprise tiers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from kamiyo.accounts.deps import CurrentUser, mutation_budget
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.delivery import service as delivery
from kamiyo.delivery.channels.webhook import render_body
from kamiyo.delivery.queue import WEBHOOKS
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import get_tier
from kamiyo.webhooks import service
from kamiyo.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    SecretOut,
    TestOutcome,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(prefix="/api/v1/user-webhooks", tags=["webhooks"])
Mutation = Depends(mutation_budget)
WebhookId = Annotated[int, row_id("Endpoint id.")]
DeliveryId = Annotated[int, row_id("Delivery id.")]


@router.post("", status_code=201, response_model=WebhookCreated, dependencies=[Mutation], summary="Create an endpoint")
async def create(data: WebhookCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The answer holds the signing `secret` (`whsec_…`): it is shown here and on rotation only."""
    now = utcnow()
    hook, secret = await service.create_webhook(session, settings, user.id, user.tier, data, now)
    return service.webhook_dict(hook, now) | {"secret": secret}


@router.get("", response_model=WebhookList, summary="Your endpoints")
async def list_(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    now = utcnow()
    hooks = await service.list_webhooks(session, user.id)
    return {"data": [service.webhook_dict(h, now) for h in hooks], "limit": get_tier(user.tier).webhooks}


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One endpoint")
async def read(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    return service.webhook_dict(await service.get_webhook(session, user.id, webhook_id), utcnow())


@router.patch("/{webhook_id}", response_model=WebhookOut, dependencies=[Mutation], summary="Change an endpoint")
async def update(
    webhook_id: WebhookId, data: WebhookUpdate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    now = utcnow()
    hook = await service.get_webhook(session, user.id, webhook_id)
    return service.webhook_dict(await service.update_webhook(session, settings, hook, data, now), now)


@router.delete("/{webhook_id}", status_code=204, dependencies=[Mutation], summary="Delete an endpoint")
async def delete(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> Response:
    await service.delete_webhook(session, await service.get_webhook(session, user.id, webhook_id))
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret", response_model=SecretOut, dependencies=[Mutation], summary="Rotate the secret"
)
async def rotate(
    webhook_id: WebhookId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """A new secret; for 24 h every message carries a signature with the old and one with the new secret."""
    now = utcnow()
    hook = await service.get_webhook(session, user.id, webhook_id)
    secret = await service.rotate_secret(session, settings, hook, now)
    return {"id": hook.id, "secret": secret, "previous_secret_expires_at": hook.previous_secret_expires_at}


@router.post("/{webhook_id}/test", response_model=TestOutcome, dependencies=[Mutation], summary="Send a test event")
async def test(
    request: Request, webhook_id: WebhookId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Sends a signed `webhook.test` event now (with the newest exploit as `data`) and answers the outcome."""
    await service.get_webhook(session, user.id, webhook_id)
    body = render_body("webhook.test", await delivery.sample_exploit(session), utcnow())
    result, row = await delivery.send_test(get_database(request), settings, WEBHOOKS, webhook_id, body, {})
    return {"success": result.ok, "delivery": row}


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, summary="Delivery log, newest first")
async def deliveries(
    webhook_id: WebhookId,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> dict[str, Any]:
    await service.get_webhook(session, user.id, webhook_id)
    return await delivery.list_deliveries(session, WEBHOOKS, webhook_id, limit=limit, cursor=cursor)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail, summary="One delivery, with its attempts"
)
async def delivery_detail(
    webhook_id: WebhookId, delivery_id: DeliveryId, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    await service.get_webhook(session, user.id, webhook_id)
    row = await delivery.get_delivery(session, WEBHOOKS, webhook_id, delivery_id)
    return delivery.delivery_dict(row) | {"attempts_log": await delivery.attempts_of(session, delivery_id)}


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryOut,
    dependencies=[Mutation],
    summary="Replay one delivery now",
)
async def retry(webhook_id: WebhookId, delivery_id: DeliveryId, user: CurrentUser, session: SessionDep) -> Any:
    """The delivery becomes due now, with the same `webhook-id`; the log shows the new attempt."""
    await service.get_webhook(session, user.id, webhook_id)
    row = await delivery.replay(session, WEBHOOKS, webhook_id, delivery_id, utcnow())
    return delivery.delivery_dict(row)
