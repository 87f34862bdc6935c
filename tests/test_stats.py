"""The snapshot: the seed's shape, the default queries, and collectors that fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest

from asgi_adminstats import CollectorFailure
from asgi_adminstats.stats import StatsEngine

from support.loopback import client, recv, recv_type, token

# The seed document's stats_update example ("API Reference"), reduced to its shape.
SEED_SHAPE = {
    "online": {"users": int, "players": int},
    "totals": {"players": int, "villages": int},
    "activity": {"recentActions": list},
    "system": {
        "database": {"status": str, "latency": float},
        "memory": {"used": int, "total": int},
        "uptime": int,
    },
}


def _check_shape(data: Mapping[str, Any], shape: Mapping[str, Any], where: str = "data") -> None:
    for key, expected in shape.items():
        assert key in data, f"{where}.{key} missing"
        if isinstance(expected, dict):
            _check_shape(data[key], expected, f"{where}.{key}")
        elif expected is float:
            assert isinstance(data[key], int | float), f"{where}.{key}: {data[key]!r}"
        else:
            assert isinstance(data[key], expected), f"{where}.{key}: {data[key]!r}"


async def test_snapshot_has_the_seed_shape_and_right_numbers(start: Any) -> None:
    stats, addr = await start(stats_interval=0.3)
    await stats.record_action("BAN_PLAYER", "AdminUser", "PLAYER", 1)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await recv_type(ws, "stats_update")
        message = await recv_type(ws, "stats_update")
    data = message["data"]
    _check_shape(data, SEED_SHAPE)
    # support/demo_db.py's rows: sessions 1, 5, 6 and 60 minutes old for users 1, 2, 2, 3;
    # players active 30 h, 2 h and 2 h ago; two villages.
    assert data["online"] == {"users": 2, "players": 2, "connections": 1}
    assert data["totals"] == {"players": 3, "villages": 2}
    assert data["system"]["database"]["status"] == "healthy"
    assert data["system"]["memory"]["total"] >= data["system"]["memory"]["used"] > 10
    [action] = data["activity"]["recentActions"]
    assert action["action"] == "BAN_PLAYER" and action["admin"] == "AdminUser"
    meta = data["meta"]
    assert meta["instance"] == "test-1" and meta["stale"] is False
    assert set(meta["sources"]) == {"system", "database", "queries"}
    assert all(source["ok"] for source in meta["sources"].values())


class Flaky:
    """Works until ``broken`` is set, then raises (or hangs)."""

    name = "game"

    def __init__(self) -> None:
        self.broken: str | None = None
        self.calls = 0

    async def collect(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.broken == "raise":
            raise RuntimeError("game server unreachable")
        if self.broken == "hang":
            await asyncio.sleep(60)
        return {"game": {"matches": self.calls}}


async def test_failing_collector_gives_stale_snapshot_and_connection_stays(start: Any) -> None:
    flaky = Flaky()
    _, addr = await start(stats_interval=0.3, collectors=(flaky,))
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        good = (await recv_type(ws, "stats_update"))["data"]
        flaky.broken = "raise"
        while not (bad := (await recv_type(ws, "stats_update"))["data"])["meta"]["stale"]:
            pass
        await ws.send('{"type": "ping"}')
        assert (await recv_type(ws, "pong"))["type"] == "pong"
        flaky.broken = None
        while (healed := (await recv_type(ws, "stats_update"))["data"])["meta"]["stale"]:
            pass
    assert good["game"]["matches"] >= 1
    assert bad["game"]["matches"] <= healed["game"]["matches"] - 1  # the last good value
    assert bad["meta"]["sources"]["game"] == {
        "ok": False,
        "ms": bad["meta"]["sources"]["game"]["ms"],
        "error": "error: RuntimeError",
    }
    assert bad["online"]["users"] == 2  # the other sources are fresh
    assert healed["meta"]["sources"]["game"]["ok"] is True


async def test_slow_collector_times_out_without_delaying_the_tick() -> None:
    flaky = Flaky()
    engine = StatsEngine([flaky], instance="i", timeout=0.1)
    first = await engine.snapshot(connections=0)
    flaky.broken = "hang"
    started = asyncio.get_running_loop().time()
    second = await engine.snapshot(connections=0)
    assert asyncio.get_running_loop().time() - started < 1
    assert second["meta"]["stale"] is True
    assert second["meta"]["sources"]["game"]["error"] == "timeout after 0.1s"
    assert second["game"] == first["game"]


async def test_collector_failing_from_the_start_leaves_nulls() -> None:
    flaky = Flaky()
    flaky.broken = "raise"
    data = await StatsEngine([flaky], instance="i", timeout=1).snapshot(connections=3)
    assert "game" not in data
    assert data["online"] == {"users": None, "players": None, "connections": 3}
    assert data["meta"]["stale"] is False
    assert data["meta"]["sources"]["game"]["ok"] is False


async def test_failure_with_a_fresh_fact_is_not_stale() -> None:
    class Probe:
        name = "database"

        async def collect(self) -> Mapping[str, Any]:
            raise CollectorFailure("probe failed", {"system": {"database": {"status": "down"}}})

    data = await StatsEngine([Probe()], instance="i", timeout=1).snapshot(connections=0)
    assert data["system"]["database"]["status"] == "down"
    assert data["meta"]["sources"]["database"]["error"] == "probe failed"


def test_collector_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        StatsEngine([Flaky(), Flaky()], instance="i", timeout=1)


async def test_snapshot_is_serialized_once_per_tick(
    start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgi_adminstats import protocol

    encoded: list[str] = []
    real_encode = protocol.encode

    def counting_encode(message: Mapping[str, Any]) -> str:
        encoded.append(message["type"])
        return real_encode(message)

    monkeypatch.setattr(protocol, "encode", counting_encode)
    stats, addr = await start(stats_interval=0.3)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client(f"ws://{addr}/admin/ws", tok=token(f"u{i}")))
            for i in range(4)
        ]
        for ws in clients:
            await recv_type(ws, "stats_update")
        encoded.clear()
        frames = [await asyncio.wait_for(ws.recv(), 2) for ws in clients]
        await stats.tick()
        frames += [await asyncio.wait_for(ws.recv(), 2) for ws in clients]
    # Each encoding is one byte-identical frame for every client.
    assert len(set(frames)) <= encoded.count("stats_update")
    # Two (or three, if a timed tick ran meanwhile) encodings for 8 deliveries.
    assert 2 <= encoded.count("stats_update") <= 3
