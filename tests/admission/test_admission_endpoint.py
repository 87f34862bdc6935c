"""``<mount>/admission`` (issue 14, item 4.1), against real uvicorn servers.

A browser cannot read the HTTP status of a refused WebSocket upgrade (its socket only
closes with 1006, as for a network fault), so the browser client asks this endpoint why.
It must agree with what the WebSocket gets, take nothing from the attempt budget, tell
the caller about its own request only, and be readable from any page.
"""

from __future__ import annotations

from typing import Any

import httpx2
from starlette.applications import Starlette
from websockets.exceptions import InvalidStatus

from support.loopback import ORIGIN, client, recv, token

OTHER = "http://refused.example.com"


async def admission(
    addr: str, origin: str | None, method: str = "POST", path: str = "/admin/ws/admission"
) -> httpx2.Response:
    headers = {} if origin is None else {"Origin": origin}
    async with httpx2.AsyncClient() as http:
        return await http.request(method, f"http://{addr}{path}", headers=headers)


async def upgrade_status(addr: str, origin: str) -> int:
    """The HTTP status of a WebSocket attempt from ``origin``: 101 when it opens."""
    try:
        async with client(f"ws://{addr}/admin/ws", tok=token(), origin=origin) as ws:
            assert (await recv(ws))["type"] == "connected"
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_it_says_whether_this_origin_may_connect(start: Any) -> None:
    _, addr = await start()
    allowed = await admission(addr, ORIGIN)
    assert allowed.status_code == 200
    assert allowed.json() == {"origin": ORIGIN, "allowed": True, "limited": False}
    # A page the server refuses must be able to read why: any origin may read it.
    assert allowed.headers["access-control-allow-origin"] == "*"
    assert allowed.headers["cache-control"] == "no-store"
    assert await upgrade_status(addr, ORIGIN) == 101

    refused = await admission(addr, OTHER)
    # About the caller only: its own Origin back, never the allow-list.
    assert refused.json() == {"origin": OTHER, "allowed": False, "limited": False}
    assert ORIGIN not in refused.text
    assert await upgrade_status(addr, OTHER) == 403

    # GET answers the same; without an Origin, what a socket without one would get.
    assert (await admission(addr, OTHER, "GET")).json()["allowed"] is False
    assert (await admission(addr, None)).json() == {
        "origin": None,
        "allowed": True,
        "limited": False,
    }
    slash = await admission(addr, OTHER, path="/admin/ws/admission/")
    assert slash.json()["allowed"] is False


async def test_it_reports_the_attempt_limit_and_takes_nothing(start: Any) -> None:
    attempts = 2
    _, addr = await start(connect_burst=attempts, connect_rate=0.01)
    for _ in range(10):  # asking is free: no attempt is taken
        assert (await admission(addr, ORIGIN)).json()["limited"] is False
    for _ in range(attempts):
        assert await upgrade_status(addr, ORIGIN) == 101
    assert (await admission(addr, ORIGIN)).json() == {
        "origin": ORIGIN,
        "allowed": True,
        "limited": True,
    }
    assert await upgrade_status(addr, ORIGIN) == 429


async def test_routes_serve_it_too(start: Any) -> None:
    def routed(stats: Any) -> Starlette:
        return Starlette(routes=stats.routes(), lifespan=stats.lifespan)

    _, addr = await start(host=routed)
    assert (await admission(addr, OTHER)).json()["allowed"] is False
