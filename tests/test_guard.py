"""The Origin allow-list: refused with HTTP 403 before the WebSocket is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from conftest import ORIGIN, client, recv, token

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
