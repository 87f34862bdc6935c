"""The Origin allow-list (HTTP 403 before the WebSocket is accepted), and the client
address the attempt limit, the pending budget and the log use."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from asgi_adminstats.admission import INVALID, UNKNOWN, client_ip

from support.loopback import ORIGIN, client, recv, token

REFUSED = [
    "null",
    "https://dashboard.example.com",  # other scheme
    "http://dashboard.example.com:8080",  # other port
    "http://dashboard.example.com.evil.com",
    "http://evil.example.com",
    "http://dashboard.example.com/",  # not an origin: has a path
]


async def _status(addr: str, origin: str | None) -> int:
    try:
        async with client(f"ws://{addr}/admin/ws", tok=token(), origin=origin) as ws:
            assert (await recv(ws))["type"] == "connected"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize("origin", REFUSED)
async def test_other_origins_get_403(start: Any, origin: str) -> None:
    _, addr = await start()
    assert await _status(addr, origin) == 403


async def test_allowed_origin_case_insensitive(start: Any) -> None:
    _, addr = await start()
    assert await _status(addr, ORIGIN) == 101
    assert await _status(addr, ORIGIN.upper()) == 101


async def test_missing_origin_allowed_by_default_refusable(start: Any) -> None:
    _, addr = await start()
    assert await _status(addr, None) == 101
    _, strict = await start(allow_missing_origin=False)
    assert await _status(strict, None) == 403


async def test_wildcard_only_when_configured(start: Any) -> None:
    _, addr = await start(allowed_origins=("*",))
    assert await _status(addr, "http://anything.example.org") == 101


async def test_refusal_happens_before_auth(start: Any) -> None:
    _, addr = await start()
    try:
        async with client(f"ws://{addr}/admin/ws", tok="garbage", origin="http://evil.com"):
            pytest.fail("connected")
    except InvalidStatus as exc:
        assert exc.response.status_code == 403
        assert exc.response.body == b"forbidden origin"


# --- client_ip: the address the attempt limit, the pending budget and the log use ---

PROXY = (ipaddress.ip_network("10.0.0.1/32"),)


def _scope(peer: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "client": (peer, 4711) if peer is not None else None,
        "headers": [(name.encode(), value.encode("latin-1")) for name, value in headers],
    }


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),  # one canonical text: one bucket
        ("::ffff:203.0.113.7", "203.0.113.7"),  # a dual-stack socket's IPv4 client
        ("not-an-ip sub=root code=1000", INVALID),  # uvicorn copies X-Forwarded-For here
        ("fe80::1%eth0 sub=root", INVALID),  # a zone is free text
        (None, UNKNOWN),
    ],
)
def test_client_ip_is_ip_text_or_a_placeholder(peer: str | None, expected: str) -> None:
    assert client_ip(_scope(peer), ()) == expected
    assert client_ip(_scope(peer, ("x-forwarded-for", "198.51.100.1")), PROXY) == expected


@pytest.mark.parametrize(
    "hop", ["not-an-ip sub=root code=1000", "unknown", "_hidden", "fe80::1%x", "1.2.3.4 5"]
)
@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
def test_a_forwarded_hop_that_is_no_ip_falls_back_to_the_proxy(hop: str, header: str) -> None:
    value = f'for="{hop}"' if header == "forwarded" else hop
    assert client_ip(_scope("10.0.0.1", (header, value)), PROXY, header) == "10.0.0.1"
    # Nor does it let the hops left of it (the client's own) choose.
    left = f"for=198.51.100.9, {value}" if header == "forwarded" else f"198.51.100.9, {hop}"
    assert client_ip(_scope("10.0.0.1", (header, left)), PROXY, header) == "10.0.0.1"


def test_the_rightmost_hop_counts_across_header_lines() -> None:
    # A proxy that adds its own line instead of extending the client's.
    scope = _scope(
        "10.0.0.1", ("x-forwarded-for", "198.51.100.9"), ("x-forwarded-for", "203.0.113.7")
    )
    assert client_ip(scope, PROXY) == "203.0.113.7"


@pytest.mark.parametrize(
    ("believed", "proxy_writes", "client_writes", "expected"),
    [
        (
            "x-forwarded-for",
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=198.51.100.99"),
            "203.0.113.7",
        ),
        (
            "forwarded",
            ("forwarded", "for=203.0.113.7"),
            ("x-forwarded-for", "198.51.100.99"),
            "203.0.113.7",
        ),
        # The proxy writes nothing: the client's header in the other name is not read.
        ("x-forwarded-for", None, ("forwarded", "for=198.51.100.99"), "10.0.0.1"),
        ("forwarded", None, ("x-forwarded-for", "198.51.100.99"), "10.0.0.1"),
    ],
)
def test_only_the_configured_header_is_believed(
    believed: str,
    proxy_writes: tuple[str, str] | None,
    client_writes: tuple[str, str],
    expected: str,
) -> None:
    headers = [client_writes, *([proxy_writes] if proxy_writes else [])]
    assert client_ip(_scope("10.0.0.1", *headers), PROXY, believed) == expected
