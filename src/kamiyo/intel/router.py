"""HTTP path of the STIX bundle. Thin: parse, call, render.

A public data path: anonymous reads within the anonymous limits, a key raises them.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kamiyo.api_deps import SessionDep
from kamiyo.exploits import service
from kamiyo.exploits.filters import SortKey
from kamiyo.exploits.router import FiltersDep
from kamiyo.intel import stix
from kamiyo.kit.jsonresp import dumps

router = APIRouter(tags=["threat intelligence"])


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
async def stix_bundle(
    request: Request,
    session: SessionDep,
    filters: FiltersDep,
    sort: Annotated[SortKey, Query(description="Order; unknown USD amounts sort as smallest.")] = "-timestamp",
    page: Annotated[int, Query(ge=1, le=100_000, description="Page number from 1 (offset paging).")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="Opaque cursor for deep paging.")] = None,
) -> Response:
    found = await service.list_exploits(session, filters, sort=sort, page=page, page_size=page_size, cursor=cursor)
    headers = {"X-Total-Count": str(found["total"])}
    if found["next_cursor"]:
        query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "page")]
        query.append(("cursor", found["next_cursor"]))
        headers["X-Next-Cursor"] = found["next_cursor"]
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(dumps(stix.bundle(found["data"])), media_type=stix.MEDIA_TYPE, headers=headers)
