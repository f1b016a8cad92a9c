"""Requests with headers (API keys) and GraphQL POSTs, on the shared client and fetch policy.

`SourceContext.get` sends plain conditional GETs; keyed APIs (X, De.Fi, Forta, Chainabuse) need an
`Authorization`/`X-Api-Key` header and GraphQL needs a POST. This helper keeps everything else the
shared layer does — the same httpx client (User-Agent, pooling), the timeout, the retries with
backoff honouring Retry-After, the size cap and the request count — so that a keyed source stays a
declaration plus a parse function. Keys never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import email.utils
from typing import Any

import httpx
import orjson

from kamiyo.kit.timeutil import as_utc, utcnow
from kamiyo.sources.base import Document, ParseError
from kamiyo.sources.http import MAX_BYTES, MAX_RETRY_AFTER, RETRY_STATUSES, FetchContext, FetchError

NOT_ALLOWED = frozenset({405, 501})  # a mirror (or a static fixture) that only answers GET


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after") or ""
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (as_utc(email.utils.parsedate_to_datetime(value)) - utcnow()).total_seconds()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _short(url: str) -> str:
    return url.split("?", 1)[0][:200]


async def request(
    ctx: FetchContext,
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
    fetcher = ctx.fetcher
    full = str(httpx.URL(url).copy_merge_params(params)) if params else url
    key = cache_key or full
    content = orjson.dumps(json_body) if json_body is not None else None
    known = fetcher.validators.get(key, {}) if conditional else {}
    sent = {**(headers or {}), **_conditional(known)}
    if content is not None:
        sent["Content-Type"] = "application/json"
    response = await _send(ctx, method, full, sent, content)
    if response.status_code == 304:
        fetcher.not_modified += 1
        fetcher.seen_validators[key] = fetcher.validators.get(key, {})
        return None
    document = _document(full, response)
    if conditional:
        found = {"etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified")}
        fetcher.seen_validators[key] = {k: v for k, v in found.items() if v}
    return document


def _conditional(known: dict[str, str]) -> dict[str, str]:
    headers = {}
    if known.get("etag"):
        headers["If-None-Match"] = known["etag"]
    if known.get("last_modified"):
        headers["If-Modified-Since"] = known["last_modified"]
    return headers


async def _send(
    ctx: FetchContext, method: str, url: str, headers: dict[str, str], content: bytes | None
) -> httpx.Response:
    fetcher, policy = ctx.fetcher, ctx.fetcher.policy
    delay = policy.backoff
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        fetcher.requests += 1
        try:
            response = await fetcher.client.request(
                method, url, headers=headers, content=content, timeout=policy.timeout
            )
        except httpx.TimeoutException as exc:
            if last:
                raise FetchError(f"timeout after {policy.timeout:g} s fetching {_short(url)}") from exc
        except httpx.HTTPError as exc:
            if last:
                raise FetchError(f"{type(exc).__name__} fetching {_short(url)}") from exc
        else:
            if response.status_code not in RETRY_STATUSES or last:
                return response
            delay = max(delay, _retry_after(response))
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _document(url: str, response: httpx.Response) -> Document:
    status = response.status_code
    if status in (401, 403):
        raise FetchError(f"HTTP {status} from {_short(url)}: the API key was refused", status)
    if status >= 400:
        raise FetchError(f"HTTP {status} from {_short(url)}", status)
    if len(response.content) > MAX_BYTES:
        raise FetchError(f"response of {_short(url)} exceeds {MAX_BYTES} bytes")
    return Document(str(response.url), status, response.content, {k.lower(): v for k, v in response.headers.items()})


async def graphql(
    ctx: FetchContext,
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
