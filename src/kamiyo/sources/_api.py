"""Requests with headers (API keys) and GraphQL POSTs, on the shared client and fetch policy.

`SourceContext.get` sends plain conditional GETs; keyed APIs (X, De.Fi, Forta, Chainabuse) need an
`Authorization`/`X-Api-Key` header and GraphQL needs a POST. This helper keeps everything else the
shared layer does — the same httpx client (User-Agent, pooling), the timeout, the retries with
backoff honouring Retry-After, the size cap and the request count — so that a keyed source stays a
declaration plus a parse function. Keys never appear in errors or logs.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from kamiyo.sources.base import Document, ParseError
from kamiyo.sources.http import FetchError, SourceContext

NOT_ALLOWED = frozenset({405, 501})  # a mirror (or a static fixture) that only answers GET


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def request(
    ctx: SourceContext,
    url: str,
    *,
    method: str = "GET",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    cache_key: str | None = None,
    conditional: bool = True,
) -> Document | None:
    """One conditional request with the shared retry policy: the body, or None on 304 Not Modified.

    ETag / Last-Modified are remembered in the fetcher under `cache_key` (default: the full URL),
    like `SourceContext.get` does, and saved by the scheduler only when the run succeeds. Later
    pages of a listing go `conditional=False`: they neither send nor replace the first page's validators.
    FetchError (never showing the key) when the request fails for good.
    """
    full = str(httpx.URL(url).copy_merge_params(params)) if params else url
    content = orjson.dumps(json_body) if json_body is not None else None
    sent = {**(headers or {}), **({"Content-Type": "application/json"} if content is not None else {})}
    return await ctx.fetcher.request(
        method, full, headers=sent, content=content, cache_key=cache_key, conditional=conditional, keyed=True
    )


async def graphql(
    ctx: SourceContext,
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    conditional: bool = True,
) -> dict[str, Any] | None:
    """The `data` of a GraphQL query, or None when unchanged (304). GraphQL errors without data
    are a ParseError.

    The query is POSTed as JSON, conditionally (ETag) under the endpoint URL. An endpoint that
    refuses POST (405/501) is taken for a static mirror of the answer — a KAMIYO_SOURCE_URLS
    override such as the test fixture server — and read with a plain conditional GET of that URL.
    """
    body = {"query": query, "variables": variables or {}}
    try:
        document = await request(
            ctx, url, method="POST", headers=headers, json_body=body, cache_key=url, conditional=conditional
        )
    except FetchError as exc:
        if exc.status not in NOT_ALLOWED:
            raise
        document = await request(ctx, url, headers=headers, conditional=conditional)
    if document is None:
        return None
    answer = document.json()
    if not isinstance(answer, dict):
        raise ParseError("GraphQL answer is not an object")
    data = answer.get("data")
    if not isinstance(data, dict):
        errors = answer.get("errors") or []
        first = errors[0].get("message") if errors and isinstance(errors[0], dict) else "no data"
        raise ParseError(f"GraphQL error: {str(first)[:300]}")
    return data
