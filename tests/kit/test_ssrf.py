"""The address policy of the SSRF guard, and the checked resolution the delivery client connects with."""

from __future__ import annotations

import ipaddress

import pytest

from kamiyo.kit import ssrf

STRICT = ssrf.Policy(allow_loopback=False)
LOOPBACK_OK = ssrf.Policy(allow_loopback=True)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", ""),  # private or reserved, by Python version
        ("255.255.255.255", ""),
        ("192.0.2.1", ""),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:93.184.216.34", "IPv4-mapped"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_address_policy(address: str, problem: str | None) -> None:
    found = ssrf.address_problem(ipaddress.ip_address(address), STRICT)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_test_switch_allows_loopback_only() -> None:
    assert ssrf.address_problem(ipaddress.ip_address("127.0.0.1"), LOOPBACK_OK) is None
    assert ssrf.address_problem(ipaddress.ip_address("10.0.0.1"), LOOPBACK_OK) is not None
    assert ssrf.address_problem(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK_OK) is not None


async def test_resolution_returns_only_checked_addresses() -> None:
    answers = {"ok.example": ["93.184.216.34", "93.184.216.34"], "bad.example": ["93.184.216.34", "10.0.0.1"]}

    async def resolve(host: str, _port: int) -> list[str]:
        return answers[host]

    ssrf.set_resolver(resolve)
    try:
        assert await ssrf.resolve_checked("ok.example", 443, STRICT) == [ipaddress.ip_address("93.184.216.34")]
        with pytest.raises(ssrf.UnsafeURL, match="private address"):  # one bad answer refuses the host
            await ssrf.resolve_checked("bad.example", 443, STRICT)
    finally:
        ssrf.set_resolver(None)
