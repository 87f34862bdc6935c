"""First-try wiring: what someone trying the component sees when a setting is missing.

An empty database, or no allowed origins, must say so in one line at a level plain
uvicorn logging shows (WARNING: uvicorn configures only its own loggers, and Python's
last-resort handler prints WARNING and above), not as a traceback or not at all.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx2
import pytest
from websockets.exceptions import InvalidStatus

from asgi_adminstats import AdminStats

from support.demo_db import prepare_database
from support.loopback import ORIGIN, client, make_settings, recv, serve, starlette_host, token


async def test_an_empty_database_warns_once_naming_the_fix_and_health_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()  # a database without tables
    stats = AdminStats(make_settings(tmp_path, database_url=f"sqlite:///{db}"))
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with serve(starlette_host(stats)) as addr:
        async with client(f"ws://{addr}/admin/ws/", tok=token()) as ws:
            assert (await recv(ws))["type"] == "connected"
            data = (await recv(ws))["data"]
        async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
            health = (await http.get("/admin/ws/health")).json()
    failed = [r for r in caplog.records if r.name == "asgi_adminstats.stats"]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert failed[0].exc_info is None  # one line, no traceback
    message = failed[0].getMessage()
    assert "create_default_schema" in message and "Settings.queries" in message
    assert data["meta"]["sources"]["queries"]["ok"] is False
    audit = [r.getMessage() for r in caplog.records if r.name == "asgi_adminstats.audit"]
    assert len(audit) == 1 and "\n" not in audit[0], audit  # the table's error, no SQL dump
    assert health["stats"] == {"failing": ["queries"]}
    assert health["status"] == "degraded"


async def test_a_healthy_database_has_no_failing_stats(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    async with stats.lifespan():
        assert stats.health()["stats"] == {"failing": []}


async def test_without_allowed_origins_the_start_says_so_and_the_refusal_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, allowed_origins=())
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with serve(starlette_host(stats)) as addr:
        started = [
            r.getMessage() for r in caplog.records if "adminstats started (" in r.getMessage()
        ]
        assert len(started) == 1
        assert "allowed origins none: every browser Origin is refused" in started[0]
        assert "ADMINSTATS_ALLOWED_ORIGINS" in started[0]
        for _ in range(2):
            with pytest.raises(InvalidStatus) as refused:
                async with client(f"ws://{addr}/admin/ws/", tok=token(), origin=ORIGIN):
                    pass
            assert refused.value.response.status_code == 403
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert ORIGIN in warned[0].getMessage() and "allowed_origins" in warned[0].getMessage()
    assert token() not in caplog.text


async def test_the_start_names_the_allowed_origins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with stats.lifespan():
        pass
    assert f"allowed origins {ORIGIN})" in caplog.text
