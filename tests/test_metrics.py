"""``<mount>/metrics`` and ``<mount>/health`` over a real server: values that move, and
both endpoints off or behind the admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from support.loopback import client, closed, recv_type, token


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def scrape(address: str, **headers: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"http://{address}/admin/ws/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


async def test_metrics_count_connections_rejections_and_bytes(start: Any) -> None:
    stats, address = await start()
    before = await scrape(address)
    assert before["adminstats_connections", ()] == 0
    url = f"ws://{address}/admin/ws"
    async with client(url, tok=token(roles=("viewer",))) as ws:
        assert (await closed(ws))[0] == 4403
    async with client(url, tok=token()) as ws:
        await recv_type(ws, "stats_update")
        await stats.record_action("ban", "alice", "player", 7)
        pushed = await recv_type(ws, "audit_action")
        during = await scrape(address)
    after = await scrape(address)

    assert during["adminstats_connections", ()] == 1
    assert during["adminstats_sockets", ()] == 1
    assert after["adminstats_connections", ()] == 0
    assert (
        after["adminstats_connection_attempts_total", (("outcome", "accepted"), ("reason", "-"))]
        == 1
    )
    assert (
        after[
            "adminstats_connection_attempts_total",
            (("outcome", "rejected"), ("reason", "not_admin")),
        ]
        == 1
    )
    assert after["adminstats_closes_total", (("code", "4403"),)] == 1
    assert during["adminstats_messages_sent_total", (("type", "stats"),)] >= 1
    assert during["adminstats_messages_sent_total", (("type", "audit_action"),)] == 1
    audit_bytes = during["adminstats_bytes_sent_total", (("type", "audit_action"),)]
    assert audit_bytes == len(pushed_text(pushed).encode())
    # One fan-out per published message, timed.
    assert during["adminstats_fanout_seconds_count", (("channel", "notifications"),)] == 1
    assert during["adminstats_fanout_seconds_count", (("channel", "stats"),)] >= 1
    assert during["adminstats_snapshots_total", ()] >= 1
    assert during["adminstats_bus_up", ()] == 1
    assert during["adminstats_producer_leading", ()] == 1
    assert during["adminstats_producer_changes_total", ()] == 1
    assert during["adminstats_slow_consumer_closes_total", ()] == 0


def pushed_text(message: dict[str, Any]) -> str:
    from asgi_adminstats.protocol import encode

    return encode(message)


async def test_tick_duration_and_collector_failures(start: Any) -> None:
    class Broken:
        name = "broken"

        async def collect(self) -> dict[str, Any]:
            raise RuntimeError("source down")

    stats, address = await start(collectors=(Broken(),))
    await stats.tick()
    found = await scrape(address)
    assert found["adminstats_tick_seconds_count", ()] == 1
    # The first snapshot at start-up and the tick each ran the broken collector once.
    assert found["adminstats_collector_failures_total", (("collector", "broken"),)] == 2
    assert found["adminstats_collector_failures_total", (("collector", "system"),)] == 0


async def test_rejections_before_the_session_are_counted(start: Any) -> None:
    _, address = await start()
    url = f"ws://{address}/admin/ws"
    with pytest.raises(InvalidStatus):
        async with client(url, tok=token(), origin="https://evil.example"):
            pass
    found = await scrape(address)
    assert (
        found[
            "adminstats_connection_attempts_total", (("outcome", "rejected"), ("reason", "origin"))
        ]
        == 1
    )


@pytest.mark.parametrize("path", ["health", "metrics"])
async def test_endpoints_can_be_turned_off(start: Any, path: str) -> None:
    _, address = await start(health_endpoint=False, metrics_endpoint=False)
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"http://{address}/admin/ws/{path}")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["health", "metrics"])
async def test_protected_endpoints_want_an_admin_token(start: Any, path: str) -> None:
    _, address = await start(protect_endpoints=True)
    endpoint = f"http://{address}/admin/ws/{path}"
    viewer, admin = token(roles=("viewer",)), token()
    async with httpx2.AsyncClient() as http:
        missing = await http.get(endpoint)
        forged = await http.get(endpoint, headers={"Authorization": "Bearer not.a.jwt"})
        other = await http.get(endpoint, headers={"Authorization": f"Bearer {viewer}"})
        allowed = await http.get(endpoint, headers={"Authorization": f"Bearer {admin}"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert forged.status_code == 401
    assert other.status_code == 403
    assert allowed.status_code == 200
    for response in (missing, forged, other):
        assert viewer not in response.text and "Traceback" not in response.text
    if path == "health":
        assert allowed.json()["connections"] == 0
    else:
        assert "adminstats_connections 0.0" in allowed.text


def test_settings_name_the_fanout_slice(tmp_path: Path) -> None:
    from asgi_adminstats.settings import SettingsError

    from support.loopback import make_settings

    with pytest.raises(SettingsError, match="fanout_slice"):
        make_settings(tmp_path, fanout_slice=0)


async def test_health_status_codes_follow_whether_the_component_serves(start: Any) -> None:
    # A load balancer reads the code: 200 while the instance serves its clients, degraded
    # included; 503 when it does not (never started, or shut down).
    stats, address = await start()
    endpoint = f"http://{address}/admin/ws/health"
    async with httpx2.AsyncClient() as http:
        ok = await http.get(endpoint)
        stats.bus_status.mark_down(ConnectionError("test: bus down"))
        degraded = await http.get(endpoint)
        stats.bus_status.mark_up()
        await stats.shutdown()
        stopped = await http.get(endpoint)
    assert (ok.status_code, ok.json()["status"]) == (200, "ok")
    assert (degraded.status_code, degraded.json()["status"]) == (200, "degraded")
    assert (stopped.status_code, stopped.json()["status"]) == (503, "not_started")
    assert stopped.headers["cache-control"] == "no-store"
    assert stopped.json().keys() == ok.json().keys()
