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
from asgi_adminstats.auth import allowed_algorithms
from asgi_adminstats.db import open_database
from sample_app import create_app
from sample_app.__main__ import load_config

from helpers.idp import CLIENT_ID, CLIENT_SECRET, identity_provider
from support.loopback import client, closed, recv, recv_type, serve

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


# --- with an identity provider: no generated secret, no HS256 -------------------------

_PROVIDERS = {
    "ADMINSTATS_OIDC_ISSUER": lambda idp: {"ADMINSTATS_OIDC_ISSUER": idp.issuer},
    "ADMINSTATS_JWKS_URL": lambda idp: {"ADMINSTATS_JWKS_URL": idp.jwks_url},
    "ADMINSTATS_JWT_PUBLIC_KEY": lambda idp: {"ADMINSTATS_JWT_PUBLIC_KEY": idp.public_pem()},
    "ADMINSTATS_INTROSPECTION_URL": lambda idp: {
        "ADMINSTATS_INTROSPECTION_URL": idp.introspection_url,
        "ADMINSTATS_INTROSPECTION_CLIENT_ID": CLIENT_ID,
        "ADMINSTATS_INTROSPECTION_CLIENT_SECRET": CLIENT_SECRET,
    },
}


@pytest.mark.parametrize("variable", list(_PROVIDERS))
async def test_a_provider_means_no_generated_secret_and_no_hs256(
    tmp_path: Path, variable: str
) -> None:
    """A provider configured: no secret made up, HS* not allowed, even when listed in
    ADMINSTATS_JWT_ALGORITHMS; a secret given as well: HS256 is allowed again."""
    async with identity_provider() as idp:
        provider = _PROVIDERS[variable](idp)
    algorithms = {"ADMINSTATS_JWT_ALGORITHMS": "HS256,RS256,ES256"}
    config = load_config("127.0.0.1", 8000, dev=True, environ=_env(tmp_path, **provider))
    assert config.settings.jwt_secret is None and not config.generated_secret
    listed = load_config(
        "127.0.0.1", 8000, dev=False, environ=_env(tmp_path, **provider, **algorithms)
    )
    assert not {"HS256", "HS384", "HS512"} & allowed_algorithms(listed.settings)
    secret = {"ADMINSTATS_JWT_SECRET": "given-secret-" + "g" * 32}
    given = load_config("127.0.0.1", 8000, dev=False, environ=_env(tmp_path, **provider, **secret))
    assert given.settings.jwt_secret == secret["ADMINSTATS_JWT_SECRET"]
    assert "HS256" in allowed_algorithms(given.settings) and not given.generated_secret
    # Without a secret, --dev has no dev login: the dashboard keeps its token field.
    for settings, dev_login in ((config.settings, False), (given.settings, True)):
        app = create_app(settings, database_url=config.database_url, dev=True, simulate=False)
        paths = {getattr(route, "path", "") for route in app.routes}
        assert ("/admin/api/dev-login" in paths) is dev_login


async def _banner_until(proc: asyncio.subprocess.Process, last: str) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or last not in lines[-1]:
        line = (await proc.stdout.readline()).decode()
        assert line, "".join(lines)  # the process ended before the banner did
        lines.append(line)
    return "".join(lines)


async def test_python_dash_m_sample_app_with_a_provider_prints_what_to_do(
    tmp_path: Path,
) -> None:
    """``python -m sample_app --dev`` with ADMINSTATS_OIDC_ISSUER: no HS256 token in the
    banner but where tokens come from and what they must carry; a token from the
    provider is admitted, an HS256 one is refused."""
    port = _free_port()
    async with identity_provider() as idp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
        env.update(_env(tmp_path), ADMINSTATS_OIDC_ISSUER=idp.issuer)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sample_app", "--dev", "--no-simulate", "--port", str(port),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(20):
                banner = await _banner_until(proc, "No token is printed")
            assert "Admin token (" not in banner and "generated a random secret" not in banner
            assert f"OIDC issuer:     {idp.issuer}" in banner
            assert "JWT algorithms:  RS256, ES256, EdDSA" in banner
            assert f"Tokens must carry iss '{idp.issuer}'" in banner
            assert 'no "Dev login"' in banner
            url, origin = f"ws://127.0.0.1:{port}/admin/ws", f"http://127.0.0.1:{port}"
            good = idp.mint("RS256", idp.claims("provider-admin"))
            hs256 = mint_token("any-secret-" + "a" * 32, sub="dev-admin", issuer=idp.issuer)
            for _ in range(100):  # the banner is printed before uvicorn listens
                try:
                    async with client(url, tok=good, origin=origin) as ws:
                        assert (await recv(ws))["user"] == {"sub": "provider-admin"}
                        break
                except OSError:
                    await asyncio.sleep(0.2)
            async with client(url, tok=hs256, origin=origin) as ws:
                assert await closed(ws) == (4401, "unauthorized: invalid token")
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
