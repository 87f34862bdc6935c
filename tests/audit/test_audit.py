"""Audit actions: the instant push, redaction, and input validation."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from asgi_adminstats import AUDIT_FIELDS
from asgi_adminstats.db import statement, utcnow_naive

from helpers.db import fetch_val, run, run_in
from support.loopback import client, recv, recv_type, token


async def test_record_action_pushes_long_before_the_next_tick(start: Any) -> None:
    stats, addr = await start()  # stats_interval is the default 5 s
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await recv_type(ws, "stats_update")
        started = time.perf_counter()
        recorded = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 7)
        pushed = await recv_type(ws, "audit_action", timeout=1)
        elapsed_ms = (time.perf_counter() - started) * 1000
    assert pushed["data"] == recorded
    assert tuple(pushed["data"]) == AUDIT_FIELDS
    assert pushed["data"]["action"] == "BAN_PLAYER"
    assert pushed["data"]["targetType"] == "PLAYER"
    assert pushed["data"]["timestamp"].endswith("Z")
    assert elapsed_ms < 1000
    print(f"record_action -> client receipt: {elapsed_ms:.1f} ms")


async def test_ids_increase_and_reach_every_subscriber(start: Any) -> None:
    stats, addr = await start()
    async with (
        client(f"ws://{addr}/admin/ws", tok=token()) as a,
        client(f"ws://{addr}/admin/ws", tok=token("bob")) as b,
    ):
        await recv(a)
        await recv(b)
        for action in ("BAN_PLAYER", "UNBAN_PLAYER"):
            await stats.record_action(action, "alice", "PLAYER", "7")
        got = {
            name: [await recv_type(ws, "audit_action") for _ in range(2)]
            for name, ws in (("a", a), ("b", b))
        }
    ids = [int(m["data"]["id"]) for m in got["a"]]
    assert ids[0] < ids[1]
    assert got["a"] == got["b"] or [m["data"] for m in got["a"]] == [m["data"] for m in got["b"]]


async def test_not_sent_to_unsubscribed_clients(start: Any) -> None:
    stats, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "unsubscribe", "subscriptions": ["notifications"]}))
        await recv_type(ws, "subscribed")
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
        with pytest.raises(TimeoutError):
            await recv_type(ws, "audit_action", timeout=0.5)


async def test_sensitive_columns_never_leave(start: Any) -> None:
    stats, addr = await start(stats_interval=0.3)
    await run(
        stats,
        statement(
            "INSERT INTO audit_log (action, admin, target_type, target_id, details, ip_address,"
            " created_at) VALUES ('RESET_PASSWORD', 'root', 'USER', '3', 'new password: hunter2',"
            " '10.1.2.3', :t)",
            t=utcnow_naive(),
        ),
    )
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        for _ in range(3):
            update = await recv_type(ws, "stats_update")
            actions = update["data"]["activity"]["recentActions"]
            if actions:
                break
    assert actions[0]["action"] == "RESET_PASSWORD"
    assert tuple(actions[0]) == AUDIT_FIELDS
    raw = json.dumps(update)
    assert "hunter2" not in raw and "10.1.2.3" not in raw


async def test_recent_actions_newest_first_limited(start: Any) -> None:
    stats, _ = await start(recent_actions=5)
    for i in range(7):
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", i)
    recent = await stats.audit.recent(5)
    assert [int(a["id"]) for a in recent] == sorted((int(a["id"]) for a in recent), reverse=True)
    assert len(recent) == 5


@pytest.mark.parametrize(
    "args",
    [
        ("", "alice", "PLAYER"),
        ("BAN", None, "PLAYER"),
        ("BAN", "alice", "x" * 200),
    ],
)
async def test_invalid_input_is_refused(start: Any, args: tuple[Any, ...]) -> None:
    stats, _ = await start()
    with pytest.raises(ValueError, match="record_action"):
        await stats.record_action(*args)


async def test_push_while_many_ticks_pending_is_not_delayed(start: Any) -> None:
    stats, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        results = await asyncio.gather(
            *(stats.record_action("BAN_PLAYER", "a", "PLAYER", i) for i in range(20))
        )
        pushed = [await recv_type(ws, "audit_action", timeout=2) for _ in results]
    assert sorted(m["data"]["id"] for m in pushed) == sorted(r["id"] for r in results)


async def test_subscribe_since_replays_missed_actions_oldest_first(start: Any) -> None:
    stats, addr = await start()
    first = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
    missed = [await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", i) for i in (2, 3)]
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(
            json.dumps(
                {"type": "subscribe", "subscriptions": ["notifications"], "since": first["id"]}
            )
        )
        replayed = [await recv_type(ws, "audit_action") for _ in missed]
        await ws.send(json.dumps({"type": "subscribe", "subscriptions": [], "since": "x1"}))
        error = await recv_type(ws, "error")
    assert [m["data"]["id"] for m in replayed] == [a["id"] for a in missed]
    assert all(m["data"]["replayed"] is True for m in replayed)
    assert error["code"] == "bad_message"


@pytest.mark.parametrize(
    ("field", "value"),
    [("admin", "a" * 256), ("admin", "\ud800"), ("action", "A" * 65), ("target_id", "9" * 129)],
)
async def test_values_the_audit_table_cannot_hold_are_refused(
    start: Any, field: str, value: str
) -> None:
    stats, _ = await start()
    args = {"action": "BAN_PLAYER", "admin": "alice", "target_type": "PLAYER", "target_id": "7"}
    args[field] = value
    with pytest.raises(ValueError, match=f"record_action: '{field}'"):
        await stats.record_action(**args)


async def test_an_oidc_sized_admin_name_is_recorded_whole(start: Any) -> None:
    stats, addr = await start()
    admin = "a" * 255  # OIDC allows a 255-character sub
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        recorded = await stats.record_action("BAN_PLAYER", admin, "PLAYER", 7)
        pushed = await recv_type(ws, "audit_action")
    assert recorded["admin"] == pushed["data"]["admin"] == admin


async def _banned(stats: Any, player: int) -> bool:
    sql = statement("SELECT banned FROM players WHERE id = :id", id=player)
    return bool(await fetch_val(stats, sql))


async def test_audit_transaction_commits_with_the_host_write_then_pushes(start: Any) -> None:
    stats, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        async with stats.audit_transaction() as audit:
            await run_in(stats, audit, "UPDATE players SET banned = TRUE WHERE id = 1")
            recorded = await audit.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
            # Not pushed before the commit: nothing may announce a row that can still vanish.
            with pytest.raises(TimeoutError):
                await recv_type(ws, "audit_action", timeout=0.3)
        pushed = await recv_type(ws, "audit_action")
    assert pushed["data"] == recorded
    assert await _banned(stats, 1)
    assert (await stats.audit.get(recorded["id"])) == recorded


async def test_audit_transaction_that_fails_writes_and_pushes_nothing(start: Any) -> None:
    stats, addr = await start()
    before = await stats.audit.max_id()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        with pytest.raises(ValueError, match="record_action: 'admin'"):
            async with stats.audit_transaction() as audit:
                await run_in(stats, audit, "UPDATE players SET banned = TRUE WHERE id = 1")
                await audit.record_action("UNBAN_PLAYER", "bob", "PLAYER", 2)
                await audit.record_action("BAN_PLAYER", "x" * 300, "PLAYER", 1)
        with pytest.raises(TimeoutError):
            await recv_type(ws, "audit_action", timeout=0.5)
    assert not await _banned(stats, 1)  # the host's write rolled back with it
    assert await stats.audit.max_id() == before  # and the action that did insert
