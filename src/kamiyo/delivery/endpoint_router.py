"""The JSON routes every delivery endpoint kind has, made once: webhook endpoints and each alert channel kind.

`endpoint_router(api)` answers a router with create, list, read, change, delete, test, the delivery log
and replay; the kind's own routes (secret rotation, confirmation, one delivery's attempts) are added to
it by the kind's module. Changes, tests and replays count against the user's 10 a minute.
"""

# No `from __future__ import annotations`: the per-kind models are closure variables FastAPI must see.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.deps import CurrentUser, mutation_budget
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, get_database, row_id
from kamiyo.config import Settings
from kamiyo.delivery import endpoints
from kamiyo.delivery import service as delivery
from kamiyo.delivery.endpoints import EndpointIds, EndpointKind
from kamiyo.delivery.schemas import DeliveryOut, DeliveryPage, TestOutcome
from kamiyo.kit.timeutil import utcnow
from kamiyo.tiers import get_tier

Mutation = Depends(mutation_budget)  # changes, tests and replays: 10 a minute per user
Create = Callable[[AsyncSession, Settings, User, Any], Awaitable[dict[str, Any]]]
Update = Callable[[AsyncSession, Settings, Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class EndpointApi:
    """How one kind's routes are spelled: paths, models, summaries; and its create and change."""

    kind: EndpointKind
    prefix: str
    tag: str
    create_body: type[BaseModel]
    created: type[BaseModel]  # the create answer's model
    create: Create  # -> the created answer
    out: type[BaseModel]
    listing: type[BaseModel]
    update_body: type[BaseModel]
    update: Update  # the kind's change (its destination), then the shared fields
    ids: EndpointIds
    summaries: dict[str, str]  # by route: list, create, read, update, delete, test, deliveries, retry
    descriptions: dict[str, str] = field(default_factory=dict)


def endpoint_router(api: EndpointApi) -> APIRouter:
    """The shared routes of one kind (closures keep `api` fixed)."""
    router = APIRouter(prefix=api.prefix, tags=[api.tag])
    one = f"/{{{api.ids.name}}}"
    kind, say, doc = api.kind, api.summaries, api.descriptions
    EndpointId = Annotated[int, row_id(api.ids.doc, api.ids.name)]
    CreateBody = Annotated[api.create_body, Body()]  # type: ignore[name-defined]

    @router.get("", response_model=api.listing, summary=say["list"])
    async def list_(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        every = await endpoints.list_owned(session, kind.model, user.id)
        mine = [kind.as_dict(r) for r in every if kind.channel_kind in (None, getattr(r, "kind", None))]
        return {"data": mine, "limit": kind.limit(get_tier(user.tier)), "used": len(every)}

    @router.post(
        "",
        status_code=201,
        response_model=api.created,
        dependencies=[Mutation],
        summary=say["create"],
        description=doc.get("create"),
    )
    async def create(user: CurrentUser, session: SessionDep, settings: SettingsDep, data: CreateBody) -> Any:
        return await api.create(session, settings, user, data)

    @router.get(one, response_model=api.out, summary=say["read"])
    async def read(endpoint_id: EndpointId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        return kind.as_dict(await endpoints.get(session, kind, user.id, endpoint_id))

    @router.patch(one, response_model=api.out, dependencies=[Mutation], summary=say["update"])
    async def update(
        endpoint_id: EndpointId,
        data: Annotated[api.update_body, Body()],  # type: ignore[name-defined]
        user: CurrentUser,
        session: SessionDep,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        row = await endpoints.get(session, kind, user.id, endpoint_id)
        return kind.as_dict(await api.update(session, settings, row, data))

    @router.delete(one, status_code=204, dependencies=[Mutation], summary=say["delete"])
    async def delete(endpoint_id: EndpointId, user: CurrentUser, session: SessionDep) -> Response:
        await endpoints.delete(session, await endpoints.get(session, kind, user.id, endpoint_id))
        return Response(status_code=204)

    add_log_routes(router, api)
    return router


def add_log_routes(router: APIRouter, api: EndpointApi) -> None:
    """Test sends, the delivery log and replays."""
    kind, say, doc = api.kind, api.summaries, api.descriptions
    EndpointId = Annotated[int, row_id(api.ids.doc, api.ids.name)]
    DeliveryId = Annotated[int, row_id(api.ids.delivery_doc)]
    one = f"/{{{api.ids.name}}}"

    @router.post(
        one + "/test",
        response_model=TestOutcome,
        dependencies=[Mutation],
        summary=say["test"],
        description=doc.get("test"),
    )
    async def test(
        request: Request, endpoint_id: EndpointId, user: CurrentUser, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        row = await endpoints.get(session, kind, user.id, endpoint_id)
        result, sent = await endpoints.send_test(get_database(request), settings, session, kind, row)
        return {"success": result.ok, "delivery": sent}

    @router.get(one + "/deliveries", response_model=DeliveryPage, summary=say["deliveries"])
    async def deliveries(
        endpoint_id: EndpointId,
        user: CurrentUser,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
    ) -> dict[str, Any]:
        await endpoints.get(session, kind, user.id, endpoint_id)
        return await delivery.list_deliveries(session, kind.queue, endpoint_id, limit=limit, cursor=cursor)

    @router.post(
        one + "/deliveries/{delivery_id}/retry",
        status_code=202,
        response_model=DeliveryOut,
        dependencies=[Mutation],
        summary=say["retry"],
        description=doc.get("retry"),
    )
    async def retry(endpoint_id: EndpointId, delivery_id: DeliveryId, user: CurrentUser, session: SessionDep) -> Any:
        row = await endpoints.get(session, kind, user.id, endpoint_id)
        return delivery.delivery_dict(await endpoints.replay(session, kind, row, delivery_id, utcnow()))
