"""Whose address a limit counts: the peer's, unless KAMIYO_TRUSTED_PROXIES says its forwarded headers are believed;
IPv6 clients by their /64."""

from __future__ import annotations

import httpx
import pytest

from kamiyo.config import Settings
from kamiyo.kit.clientip import TrustedProxies, parse_networks, rate_identity
from tests.support.app import running
from tests.support.users import settings_for

PATH = "/exploits?page_size=1"


async def _codes(app: object, peer: str, requests: list[dict[str, str]]) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=(peer, 1234))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return [(await c.get(PATH, headers=headers)).status_code for headers in requests]


@pytest.mark.reads_seed
async def test_forwarded_headers_are_ignored_unless_the_peer_is_a_trusted_proxy(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="3/minute")
    async with running(settings, client=("127.0.0.1", 1)) as (app, _):
        spoofed = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(3)] + [{"Forwarded": "for=198.51.100.7"}]
        assert await _codes(app, "127.0.0.1", spoofed) == [200, 200, 200, 429]


@pytest.mark.reads_seed
async def test_a_trusted_proxy_names_the_client_and_left_hand_entries_cannot_reset_it(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="3/minute", KAMIYO_TRUSTED_PROXIES="10.0.0.0/8, ::1")
    async with running(settings) as (app, _):
        # one client behind the proxy, whatever it writes to the left of what the proxy appended
        same = [{"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.7"} for n in range(3)]
        same.append({"X-Forwarded-For": "198.51.100.7, 10.1.1.1"})  # through a second trusted hop
        assert await _codes(app, "10.0.0.2", same) == [200, 200, 200, 429]
        # the standard header, quoted IPv6 with a port; and another client is counted apart
        forwarded = [{"Forwarded": 'for="[2001:db8:5::1]:4711";proto=https'}] * 3
        assert await _codes(app, "::1", forwarded) == [200, 200, 200]
        assert await _codes(app, "10.0.0.2", [{"X-Forwarded-For": "198.51.100.8"}]) == [200]
        # a peer outside the trusted list is itself the client
        assert await _codes(app, "192.0.2.50", [{"X-Forwarded-For": "198.51.100.9"}] * 4) == [200, 200, 200, 429]


async def test_a_trusted_proxy_sets_the_scheme(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_TRUSTED_PROXIES="127.0.0.1")
    async with running(settings) as (_, c):
        r = await c.post(
            "/api/v1/auth/signup",
            json={"email": "tls@example.com", "password": "correct horse battery staple"},
            headers={"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"},
        )
        assert r.status_code == 201 and "secure" in r.headers["set-cookie"].lower()


@pytest.mark.reads_seed
async def test_ipv6_clients_are_counted_by_their_64(db_url: str, limit_env: dict[str, str]) -> None:
    settings = settings_for(db_url, KAMIYO_ANON_RATE_LIMIT="4/minute", **limit_env)
    async with running(settings) as (app, _):
        assert await _codes(app, "2001:db8:1:2::1", [{}] * 2) == [200, 200]
        assert await _codes(app, "2001:db8:1:2:ffff:ffff:ffff:fffe", [{}] * 3) == [200, 200, 429]
        assert await _codes(app, "2001:db8:1:3::1", [{}]) == [200]  # the next /64 is another client
        assert await _codes(app, "::ffff:192.0.2.1", [{}] * 4) == [200] * 4  # IPv4-mapped: the IPv4 address


def test_rate_identity_and_forwarded_chains() -> None:
    assert rate_identity("2001:db8:a:b:c:d:e:f") == "2001:db8:a:b::/64"
    assert rate_identity("192.0.2.4") == "192.0.2.4"
    proxies = TrustedProxies(parse_networks("10.0.0.0/8"))
    chain = [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2"), (b"x-forwarded-for", b"10.0.0.9")]
    assert proxies.resolve("10.0.0.1", chain) == ("2.2.2.2", None)
    assert proxies.resolve("10.0.0.1", [(b"x-forwarded-for", b"unknown, 10.0.0.3")]) == ("10.0.0.3", None)
    assert proxies.resolve("192.0.2.1", chain) is None
    assert TrustedProxies(()).resolve("10.0.0.1", chain) is None


def test_a_bad_trusted_proxies_entry_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        Settings(_env_file=None, KAMIYO_TRUSTED_PROXIES="10.0.0.0/8, not-an-ip")  # type: ignore[call-arg]
