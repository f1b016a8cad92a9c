"""`/api/v1/user-webhooks`: outgoing webhook endpoints of the caller (team and enterprise tiers).

The shared endpoint routes (`delivery.endpoint_router`), plus secret rotation and one delivery's attempts.
"""

from __future__ import annotations

from typing import Annotated, Any

from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import CurrentUser
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.endpoint_router import EndpointApi, Mutation, endpoint_router
from kamiyo.delivery.models import UserWebhook
from kamiyo.delivery.schemas import DeliveryDetail
from kamiyo.kit.timeutil import utcnow
from kamiyo.webhooks import service
from kamiyo.webhooks.schemas import (
    WEBHOOK_IDS,
    SecretOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)

WebhookId = Annotated[int, row_id(WEBHOOK_IDS.doc)]
DeliveryId = Annotated[int, row_id(WEBHOOK_IDS.delivery_doc)]


async def _create(session: AsyncSession, settings: Settings, user: User, data: WebhookCreate) -> dict[str, Any]:
    now = utcnow()
    hook, secret = await service.create_webhook(session, settings, user.id, user.tier, data, now)
    return service.webhook_dict(hook, now) | {"secret": secret}


async def _update(session: AsyncSession, settings: Settings, hook: UserWebhook, data: WebhookUpdate) -> UserWebhook:
    return await service.update_webhook(session, settings, hook, data, utcnow())


API = EndpointApi(
    kind=service.WEBHOOK,
    prefix="/api/v1/user-webhooks",
    tag="webhooks",
    create_body=WebhookCreate,
    created=WebhookCreated,
    create=_create,
    out=WebhookOut,
    listing=WebhookList,
    update_body=WebhookUpdate,
    update=_update,
    ids=WEBHOOK_IDS,
    summaries={
        "list": "Your endpoints",
        "create": "Create an endpoint",
        "read": "One endpoint",
        "update": "Change an endpoint",
        "delete": "Delete an endpoint",
        "test": "Send a test event",
        "deliveries": "Delivery log, newest first",
        "retry": "Replay one delivery now",
    },
    descriptions={
        "create": "The answer holds the signing `secret` (`whsec_…`): it is shown here and on rotation only.",
        "test": "Sends a signed `webhook.test` event now (with the newest exploit as `data`) and answers the outcome.",
        "retry": "The delivery becomes due now, with the same `webhook-id`; the log shows the new attempt.",
    },
)
router = endpoint_router(API)


@router.post(
    "/{webhook_id}/rotate-secret", response_model=SecretOut, dependencies=[Mutation], summary="Rotate the secret"
)
async def rotate(
    webhook_id: WebhookId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """A new secret; for 24 h every message carries a signature with the old and one with the new secret."""
    hook = await endpoints.get(session, service.WEBHOOK, user.id, webhook_id)
    secret = await service.rotate_secret(session, settings, hook, utcnow())
    return {"id": hook.id, "secret": secret, "previous_secret_expires_at": hook.previous_secret_expires_at}


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail, summary="One delivery, with its attempts"
)
async def delivery_detail(
    webhook_id: WebhookId, delivery_id: DeliveryId, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    await endpoints.get(session, service.WEBHOOK, user.id, webhook_id)
    row = await delivery.get_delivery(session, service.WEBHOOK.queue, webhook_id, delivery_id)
    return delivery.delivery_dict(row) | {"attempts_log": await delivery.attempts_of(session, delivery_id)}
