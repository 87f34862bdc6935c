"""``adminstats token``: mints a token the server accepts; clear errors otherwise."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from asgi_adminstats import Settings
from asgi_adminstats.auth import TokenVerifier

SECRET = "cli-secret-" + "q" * 32


def _run(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    if secret is not None:
        env["ADMINSTATS_JWT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "asgi_adminstats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_token_verifies_as_admin() -> None:
    result = _run("token", "--sub", "alice", "--role", "admin", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    identity = asyncio.run(TokenVerifier(Settings(jwt_secret=SECRET)).verify(result.stdout.strip()))
    assert identity.sub == "alice"
    assert identity.exp is not None


def test_roles_list() -> None:
    result = _run("token", "--sub", "bob", "--role", "ops", "--role", "admin")
    verify = TokenVerifier(Settings(jwt_secret=SECRET)).verify
    claims = asyncio.run(verify(result.stdout.strip())).claims
    assert claims["roles"] == ["ops", "admin"]


def test_missing_secret_is_a_clear_error() -> None:
    result = _run("token", "--sub", "alice", secret=None)
    assert result.returncode == 2
    assert "ADMINSTATS_JWT_SECRET (setting 'jwt_secret') is required" in result.stderr
    assert "Traceback" not in result.stderr
