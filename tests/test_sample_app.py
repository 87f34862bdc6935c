"""The sample app: its HTTP API, the dashboard page, and ``python -m sample_app``."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from asgi_adminstats import SettingsError, mint_token
from asgi_adminstats.db import open_database
from sample_app import create_app
from sample_app.__main__ import load_config

from support.loopback import client, recv, recv_type, serve

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'game.db'}", **extra}


@pytest.fixture
async def sample(tmp_path: Path) -> Any:
    config = load_config("127.0.0.1", 8000, dev=False, environ=_env(tmp_path))
    app = create_app(config.settings, database_url=config.database_url, simulate=False)
    async with serve(app) as addr:
        yield config.settings, addr


async def test_ban_records_an_action_pushed_to_dashboards(sample: Any) -> None:
    settings, addr = sample
    admin = mint_token(settings.jwt_secret, sub="mod-1")
    async with (
        client(f"ws://{addr}/admin/ws", tok=admin, origin=None) as ws,
        httpx2.AsyncClient(base_url=f"http://{addr}") as http,
    ):
        await recv(ws)
        first = (await recv_type(ws, "stats_update"))["data"]
        response = await http.post(
            "/admin/api/players/7/ban", headers={"Authorization": f"Bearer {admin}"}
        )
        pushed = await recv_type(ws, "audit_action", timeout=1)
    assert response.status_code == 200
    assert pushed["data"] == response.json()
    assert pushed["data"]["action"] == "BAN_PLAYER" and pushed["data"]["admin"] == "mod-1"
    # The seeded game: thousands of rows, some of them online.
    assert first["totals"]["players"] >= 1000 and first["totals"]["villages"] >= 1000
    assert first["online"]["users"] > 0
    assert len(first["activity"]["recentActions"]) == 5


async def test_an_admin_with_a_255_character_sub_can_ban(sample: Any) -> None:
    settings, addr = sample
    sub = "o" * 255  # OIDC allows it
    admin = mint_token(settings.jwt_secret, sub=sub)
    async with (
        client(f"ws://{addr}/admin/ws", tok=admin, origin=None) as ws,
        httpx2.AsyncClient(base_url=f"http://{addr}") as http,
    ):
        await recv(ws)
        response = await http.post(
            "/admin/api/players/8/ban", headers={"Authorization": f"Bearer {admin}"}
        )
        pushed = await recv_type(ws, "audit_action")
    assert response.status_code == 200
    assert pushed["data"]["admin"] == sub


async def test_a_ban_without_its_audit_row_does_not_happen(sample: Any, tmp_path: Path) -> None:
    settings, addr = sample
    admin = mint_token(settings.jwt_secret, sub="mod-1")
    db = open_database(_env(tmp_path)["DATABASE_URL"])
    try:
        assert not await db.fetch_val("SELECT banned FROM players WHERE id = 9")
        await db.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")  # the audit log fails
        async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
            response = await http.post(
                "/admin/api/players/9/ban", headers={"Authorization": f"Bearer {admin}"}
            )
        banned = await db.fetch_val("SELECT banned FROM players WHERE id = 9")
    finally:
        await db.disconnect()
    assert response.status_code == 503
    assert response.json() == {"error": "the audit log is unavailable: nothing was changed"}
    assert not banned  # the moderation rolled back with its audit row


@pytest.mark.parametrize(
    ("auth", "player", "status"),
    [
        (None, 7, 401),
        ("garbage", 7, 401),
        ("player", 7, 403),
        ("admin", 999999, 404),
    ],
)
async def test_ban_api_refusals(sample: Any, auth: str | None, player: int, status: int) -> None:
    settings, addr = sample
    headers = {}
    if auth in ("player", "admin"):
        headers["Authorization"] = "Bearer " + mint_token(
            settings.jwt_secret, sub="x", roles=(auth,)
        )
    elif auth:
        headers["Authorization"] = f"Bearer {auth}"
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        response = await http.post(f"/admin/api/players/{player}/unban", headers=headers)
    assert response.status_code == status
    assert "error" in response.json()


async def test_dashboard_and_dev_login_only_in_dev(sample: Any, tmp_path: Path) -> None:
    _, addr = sample
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        page = await http.get("/admin")
        script = await http.get("/admin/static/dashboard.js")
        assert (await http.post("/admin/api/dev-login")).status_code == 404
        assert (await http.get("/admin/api/config")).json()["dev"] is False
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org", "")  # no CDN

    config = load_config("127.0.0.1", 8000, dev=True, environ=_env(tmp_path))
    app = create_app(config.settings, database_url=config.database_url, dev=True, simulate=False)
    async with serve(app) as dev_addr, httpx2.AsyncClient(base_url=f"http://{dev_addr}") as http:
        login = (await http.post("/admin/api/dev-login")).json()
        async with client(f"ws://{dev_addr}/admin/ws", tok=login["token"], origin=None) as ws:
            assert (await recv(ws))["user"] == {"sub": "dev-admin"}


def test_config_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ADMINSTATS_STATS_INTERVAL"):
        load_config(
            "127.0.0.1", 8000, dev=False, environ=_env(tmp_path, ADMINSTATS_STATS_INTERVAL="-5")
        )
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_config("127.0.0.1", 8000, dev=False, environ={"DATABASE_URL": "mysql://x/y"})
    config = load_config("127.0.0.1", 8123, dev=False, environ=_env(tmp_path))
    assert config.generated_secret
    assert "http://127.0.0.1:8123" in config.settings.allowed_origins


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_python_dash_m_sample_app_prints_a_working_token(tmp_path: Path) -> None:
    """The README's first command, minus the install: start, read the token, connect."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    env.update(_env(tmp_path), ADMINSTATS_STATS_INTERVAL="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sample_app",
        "--dev",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        banner: list[str] = []
        async with asyncio.timeout(20):
            while not banner or "Admin token" not in banner[-1]:
                banner.append((await proc.stdout.readline()).decode())
            tok = (await proc.stdout.readline()).decode().strip()
            text = "".join(banner)
            assert f"http://127.0.0.1:{port}/admin" in text
            while True:  # the banner is printed before uvicorn listens
                try:
                    async with client(
                        f"ws://127.0.0.1:{port}/admin/ws",
                        tok=tok,
                        origin=f"http://127.0.0.1:{port}",
                    ) as ws:
                        assert (await recv(ws))["type"] == "connected"
                        numbers = (await recv_type(ws, "stats_update"))["data"]
                        break
                except OSError:
                    await asyncio.sleep(0.2)
        assert numbers["totals"]["players"] >= 1000
        assert json.dumps(numbers)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
