"""HTTP paths of the STIX bundle, the TAXII 2.1 server (read-only) and the MISP feed. Thin: parse, call, render.

All are public data paths: anonymous reads within the anonymous limits, a key raises them (as a Bearer
token, `X-API-Key`, or the password of HTTP Basic, as TAXII clients send it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from kamiyo.api_deps import SessionDep, SettingsDep, get_database
from kamiyo.db import Database
from kamiyo.errors import InvalidInput, NotFound
from kamiyo.exploits import service
from kamiyo.exploits.router import FiltersDep, PageDep
from kamiyo.intel import ids, misp, stix, taxii
from kamiyo.intel.keys import incident_index
from kamiyo.kit.jsonresp import dumps
from kamiyo.kit.timeutil import parse_when

router = APIRouter(tags=["threat intelligence"])
API_ROOT = "/api/v1/taxii2/"
COLLECTION = {
    "id": ids.COLLECTION_ID,
    "title": "Kamiyo exploits",
    "description": "Crypto and DeFi exploits as STIX 2.1: incidents, attacker-address indicators, the sources "
    "that reported them and the relationships between them.",
    "can_read": True,
    "can_write": False,
    "media_types": [taxii.STIX_MEDIA_TYPE],
}


def _taxii(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), media_type=taxii.MEDIA_TYPE, headers=headers)


# --- STIX -------------------------------------------------------------------------------------------------


@router.get(
    "/api/v1/stix/bundle",
    summary="The filtered exploits as a STIX 2.1 bundle (same filters and paging as /exploits)",
    response_class=Response,
    responses={200: {"content": {stix.MEDIA_TYPE: {}}}},
    description="A STIX 2.1 bundle of one page of `GET /exploits` (same filters, sorts and paging). Per exploit an "
    "`incident` (Kamiyo's facts in the property extension its `extension-definition` declares), an "
    "`indicator` on the attacker address, the `identity` of each reporting source and the relationships "
    "between them. Ids are stable across re-fetches. The next page's `cursor` is in the `Link` header "
    '(`rel="next"`) and in `X-Next-Cursor`.',
)
async def stix_bundle(request: Request, session: SessionDep, paging: PageDep, filters: FiltersDep) -> Response:
    found = await service.list_exploits(session, filters, **paging)
    headers = {"X-Total-Count": str(found["total"])}
    if found["next_cursor"]:
        query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "page")]
        query.append(("cursor", found["next_cursor"]))
        headers["X-Next-Cursor"] = found["next_cursor"]
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(dumps(stix.bundle(found["data"])), media_type=stix.MEDIA_TYPE, headers=headers)


# --- TAXII 2.1 --------------------------------------------------------------------------------------------


@router.get("/taxii2/", summary="TAXII 2.1 discovery", response_class=Response)
async def taxii_discovery(settings: SettingsDep) -> Response:
    root = settings.public_url.rstrip("/") + API_ROOT  # never the request's Host header
    return _taxii(
        {
            "title": "Kamiyo",
            "description": "Crypto and DeFi exploit intelligence (read-only TAXII 2.1).",
            "default": root,
            "api_roots": [root],
        }
    )


@router.get(API_ROOT, summary="TAXII 2.1 API root", response_class=Response)
async def taxii_api_root() -> Response:
    return _taxii(
        {
            "title": "Kamiyo exploits",
            "versions": [taxii.MEDIA_TYPE],
            "max_content_length": 0,  # read-only: nothing is accepted
        }
    )


@router.get(API_ROOT + "collections/", summary="TAXII 2.1 collections", response_class=Response)
async def taxii_collections() -> Response:
    return _taxii({"collections": [COLLECTION]})


CollectionId = Annotated[str, Path(max_length=64, description=f"The one collection: `{ids.COLLECTION_ID}`.")]


def _collection(collection_id: str) -> None:
    if collection_id != ids.COLLECTION_ID:
        raise NotFound(f"no collection {collection_id!r}")


@router.get(API_ROOT + "collections/{collection_id}/", summary="One TAXII 2.1 collection", response_class=Response)
async def taxii_collection(collection_id: CollectionId) -> Response:
    _collection(collection_id)
    return _taxii(COLLECTION)


def _list(values: str | None) -> frozenset[str] | None:
    items = frozenset(v.strip() for v in (values or "").split(",") if v.strip())
    return items or None


async def _page(
    request: Request,
    session: SessionDep,
    limit: int,
    next_token: str | None,
    added_after: str | None,
    match_type: str | None,
    match_id: str | None,
) -> taxii.Page:
    match = taxii.Match(types=_list(match_type), object_ids=_list(match_id))
    if added_after:
        try:
            match.added_after = parse_when(added_after)
        except ValueError as exc:
            raise InvalidInput("added_after: not a timestamp", details=[{"field": "added_after"}]) from exc
    position = taxii.decode_next(next_token) if next_token else None
    exploit_ids = None
    if match.object_ids is not None:
        exploit_ids = await taxii.resolve_ids(session, incident_index(request.app.state), match.object_ids)
    limit = min(limit, taxii.MAX_LIMIT)  # a larger request gets the server's largest page, as TAXII allows
    return await taxii.objects_page(session, match, limit=limit, position=position, exploit_ids=exploit_ids)


def _page_headers(page: taxii.Page) -> dict[str, str]:
    if not page.objects:
        return {}
    return {
        "X-TAXII-Date-Added-First": taxii.taxii_time(page.objects[0][0]),
        "X-TAXII-Date-Added-Last": taxii.taxii_time(page.objects[-1][0]),
    }


def _envelope(page: taxii.Page, key: str, items: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"more": page.more}
    if page.next:
        body["next"] = page.next
    if items:
        body[key] = items
    return body


Limit = Annotated[
    int, Query(ge=1, le=2**31 - 1, description=f"Objects per page (at most {taxii.MAX_LIMIT} are served).")
]
Next = Annotated[str | None, Query(alias="next", max_length=500, description="`next` of the previous page.")]
AddedAfter = Annotated[str | None, Query(max_length=64, description="Only objects added after this time.")]
MatchType = Annotated[str | None, Query(alias="match[type]", max_length=500, description="Comma-separated types.")]
MatchId = Annotated[str | None, Query(alias="match[id]", max_length=4000, description="Comma-separated ids.")]


async def _filtered_page(
    request: Request,
    session: SessionDep,
    collection_id: CollectionId,
    limit: Limit = taxii.DEFAULT_LIMIT,
    next_token: Next = None,
    added_after: AddedAfter = None,
    match_type: MatchType = None,
    match_id: MatchId = None,
) -> taxii.Page:
    """The page of the collection's objects that a TAXII filter query asks for (objects and manifest alike)."""
    _collection(collection_id)
    return await _page(request, session, limit, next_token, added_after, match_type, match_id)


FilteredPage = Annotated[taxii.Page, Depends(_filtered_page)]


@router.get(
    API_ROOT + "collections/{collection_id}/objects/",
    summary="Objects of the collection, oldest added first",
    response_class=Response,
)
async def taxii_objects(page: FilteredPage) -> Response:
    body = _envelope(page, "objects", [o for _, o in page.objects])
    return _taxii(body, _page_headers(page))


@router.get(
    API_ROOT + "collections/{collection_id}/objects/{object_id}/",
    summary="One object of the collection",
    response_class=Response,
)
async def taxii_object(
    request: Request,
    session: SessionDep,
    collection_id: CollectionId,
    object_id: Annotated[str, Path(max_length=200)],
    limit: Limit = taxii.DEFAULT_LIMIT,
    next_token: Next = None,
) -> Response:
    _collection(collection_id)
    page = await _page(request, session, limit, next_token, None, None, object_id)
    if not page.objects:
        raise NotFound(f"no object {object_id!r} in this collection")
    return _taxii(_envelope(page, "objects", [o for _, o in page.objects]), _page_headers(page))


@router.get(
    API_ROOT + "collections/{collection_id}/manifest/",
    summary="Manifest of the collection's objects",
    response_class=Response,
)
async def taxii_manifest(page: FilteredPage) -> Response:
    entries = [
        {
            "id": o["id"],
            "date_added": taxii.taxii_time(added),
            "version": o.get("modified", stix.EPOCH),
            "media_type": taxii.STIX_MEDIA_TYPE,
        }
        for added, o in page.objects
    ]
    return _taxii(_envelope(page, "objects", entries), _page_headers(page))


# --- MISP feed --------------------------------------------------------------------------------------------


async def _manifest(database: Database) -> AsyncIterator[bytes]:
    """Own session: the request's session is closed before a streamed body starts."""
    async with database.session() as session:
        async for chunk in misp.manifest_chunks(session):
            yield chunk


@router.get(
    "/api/v1/misp/manifest.json",
    summary="MISP feed manifest: one entry per exploit",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}}},
    description="Add `<this server>/api/v1/misp` as a MISP feed (format: MISP). Event UUIDs are stable.",
)
async def misp_manifest(request: Request) -> StreamingResponse:
    return StreamingResponse(_manifest(get_database(request)), media_type="application/json")


@router.get(
    "/api/v1/misp/{event_uuid}.json",
    summary="One MISP event (one exploit)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def misp_event(
    request: Request,
    session: SessionDep,
    event_uuid: Annotated[str, Path(max_length=36, description="An event UUID from the manifest.")],
) -> Response:
    try:
        wanted = uuid.UUID(event_uuid)
    except ValueError as exc:
        raise InvalidInput("uuid: not a UUID", details=[{"field": "uuid"}]) from exc
    found = await incident_index(request.app.state).find(session, [wanted])
    exploits = await service.exploits_by_ids(session, list(found.values()))
    if not exploits or ids.incident_uuid(ids.stable_key(exploits[0])) != wanted:
        raise NotFound(f"no event {event_uuid}")
    return Response(dumps(misp.event(exploits[0], wanted)), media_type="application/json")
