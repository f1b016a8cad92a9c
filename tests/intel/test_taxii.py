"""The read-only TAXII 2.1 server, read by `taxii2-client` from a real uvicorn server on 127.0.0.1, on SQLite
and PostgreSQL; its paging, filters and headers; and API keys sent as HTTP Basic (as TAXII clients send them)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
import requests
import stix2
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from kamiyo.intel import ids, taxii
from kamiyo.kit.timeutil import utcnow
from tests.intel.conftest import touch
from tests.support.live import LiveServer, all_exploits
from tests.support.users import user_with_key

COLLECTION = f"/api/v1/taxii2/collections/{ids.COLLECTION_ID}"
TAXII = "application/taxii+json;version=2.1"


def _walk(collection: Collection, per_request: int, **filters: Any) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for envelope in as_pages(collection.get_objects, per_request=per_request, **filters):
        objects += envelope.get("objects", [])
    return objects


@pytest.mark.reads_seed
async def test_taxii2_client_discovers_and_pages_the_whole_collection(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    exploits = await all_exploits(client)

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]], Collection]:
        server = Server(f"{live.base_url}/taxii2/")
        (api_root,) = server.api_roots
        assert isinstance(api_root, ApiRoot) and api_root.url == f"{live.base_url}/api/v1/taxii2/"
        (collection,) = api_root.collections
        assert collection.id == ids.COLLECTION_ID and collection.can_read and not collection.can_write
        objects = _walk(collection, 1000)
        manifest: list[dict[str, Any]] = []
        for envelope in as_pages(collection.get_manifest, per_request=700):
            manifest += envelope.get("objects", [])
        return objects, manifest, collection

    objects, manifest, collection = await asyncio.to_thread(read)
    assert len({o["id"] for o in objects}) == len(objects)  # each object once, across page boundaries
    incidents = [o for o in objects if o["type"] == "incident"]
    assert len(incidents) == len(exploits) > 800
    assert {i["id"] for i in incidents} == {f"incident--{ids.incident_uuid(ids.stable_key(e))}" for e in exploits}
    referenced = {r[k] for r in objects if r["type"] == "relationship" for k in ("source_ref", "target_ref")}
    assert referenced <= {o["id"] for o in objects}  # every identity and incident referenced is served
    stix2.parse({"type": "bundle", "id": "bundle--" + ids.COLLECTION_ID, "objects": objects[:300]})
    assert [m["id"] for m in manifest] == [o["id"] for o in objects]
    assert all(
        m["version"] == o.get("modified") or o["type"] != "incident" for m, o in zip(manifest, objects, strict=True)
    )
    # Small pages that end inside one exploit's objects give the same sequence.
    small = await asyncio.to_thread(_walk, collection, 7, type="indicator")
    assert [o["id"] for o in small] == [o["id"] for o in objects if o["type"] == "indicator"]


async def test_paging_headers_added_after_and_match(client: httpx.AsyncClient, db_url: str) -> None:
    capped = (await client.get(f"{COLLECTION}/objects/?limit=5000")).json()
    assert capped["more"] is True and len(capped["objects"]) == 1000  # the server's largest page
    r = await client.get(f"{COLLECTION}/objects/?limit=50")
    assert r.status_code == 200 and r.headers["content-type"] == TAXII
    body = r.json()
    assert body["more"] is True and len(body["objects"]) == 50
    first_added = r.headers["x-taxii-date-added-first"]
    assert first_added <= r.headers["x-taxii-date-added-last"]
    nxt = (await client.get(f"{COLLECTION}/objects/?limit=50&next={body['next']}")).json()
    assert not {o["id"] for o in body["objects"]} & {o["id"] for o in nxt["objects"]}
    # Changed records come after everything else: `added_after` a time before the change gives only them,
    # and `added_after` the last date served gives nothing.
    exploits = (await client.get("/exploits?page_size=2")).json()["data"]
    before = taxii.taxii_time(utcnow())
    for exploit in exploits:
        await touch(db_url, exploit["id"], description="updated")
    recent = await client.get(f"{COLLECTION}/objects/", params={"added_after": before, "limit": 1000})
    walked = recent.json()["objects"]
    wanted = {f"incident--{ids.incident_uuid(ids.stable_key(e))}" for e in exploits}
    assert {o["id"] for o in walked if o["type"] == "incident"} == wanted and recent.json()["more"] is False
    assert {o["description"] for o in walked if o["type"] == "incident"} == {"updated"}
    latest = recent.headers["x-taxii-date-added-last"]
    after = await client.get(f"{COLLECTION}/objects/", params={"added_after": latest})
    assert after.status_code == 200 and after.json() == {"more": False}
    only = await client.get(f"{COLLECTION}/objects/", params={"added_after": before, "match[type]": "incident"})
    assert {o["id"] for o in only.json()["objects"]} == wanted
    # match[id]: any object of an exploit, reversed to its incident, without a stored map.
    incident_id = next(iter(wanted))
    objects = (
        await client.get(f"{COLLECTION}/objects/", params={"match[type]": "relationship,indicator", "limit": 1000})
    ).json()["objects"]
    some = [o for o in objects if o["type"] == "indicator"][:1] + [o for o in objects if o["type"] == "relationship"][
        :1
    ]
    asked = ",".join([incident_id, *(o["id"] for o in some), "identity--00000000-0000-4000-8000-000000000000"])
    exact = (await client.get(f"{COLLECTION}/objects/", params={"match[id]": asked})).json()["objects"]
    assert sorted(o["id"] for o in exact) == sorted([incident_id, *(o["id"] for o in some)])
    one = await client.get(f"{COLLECTION}/objects/{incident_id}/")
    assert [o["id"] for o in one.json()["objects"]] == [incident_id]
    assert (await client.get(f"{COLLECTION}/objects/incident--{ids.named('nothing')}/")).status_code == 404


@pytest.mark.input_matrix
@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{COLLECTION}/objects/?next=garbage", 422),
        (f"{COLLECTION}/objects/?limit=0", 422),
        (f"{COLLECTION}/objects/?limit=2147483648", 422),
        (f"{COLLECTION}/objects/?added_after=yesterday", 422),
        ("/api/v1/taxii2/collections/00000000-0000-0000-0000-000000000000/objects/", 404),
    ],
)
@pytest.mark.reads_seed
async def test_bad_requests_are_clear_4xx(client: httpx.AsyncClient, path: str, status: int) -> None:
    r = await client.get(path)
    assert r.status_code == status and "error" in r.json()


async def test_a_key_sent_as_basic_password_raises_the_limits(db_url: str) -> None:
    _, key = await user_with_key(db_url, "taxii@example.com", tier="pro")
    with LiveServer(db_url) as live:

        def read(password: str | None) -> tuple[int, str]:
            with httpx.Client(base_url=live.base_url) as http:
                auth = ("taxii", password) if password else None
                r = http.get("/taxii2/", auth=auth)
                return r.status_code, r.headers.get("x-ratelimit-limit", "")

        assert await asyncio.to_thread(read, None) == (200, "60")  # anonymous, counted like the other data paths
        assert await asyncio.to_thread(read, key) == (200, "10000")  # the pro tier's daily quota
        revoked = key[:-4] + "0000"
        assert (await asyncio.to_thread(read, revoked))[0] == 401
        # A reverse proxy's own Basic password is not a key: it is read anonymously.
        assert await asyncio.to_thread(read, "proxy-password") == (200, "60")

        def with_client() -> int:
            server = Server(f"{live.base_url}/taxii2/", user="anyone", password=key)
            (collection,) = server.api_roots[0].collections
            envelope = collection.get_objects(limit=5)
            return len(envelope["objects"])

        assert await asyncio.to_thread(with_client) == 5

        def bad_client() -> None:
            Server(f"{live.base_url}/taxii2/", user="anyone", password=revoked).refresh()

        with pytest.raises(requests.HTTPError, match="401"):
            await asyncio.to_thread(bad_client)


def test_basic_header_parsing() -> None:
    from kamiyo.accounts.deps import api_key_from_headers

    def header(raw: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", b"Basic " + base64.b64encode(raw))]

    assert api_key_from_headers(header(b"user:kmy_abc")) == "kmy_abc"
    assert api_key_from_headers(header(b":kmy_abc")) == "kmy_abc"
    assert api_key_from_headers(header(b"kmy_abc:")) is None
    assert api_key_from_headers([(b"authorization", b"Basic !!!")]) is None
