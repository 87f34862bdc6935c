"""panva's oidc-provider (tests/oidc/), a real OpenID-certified server, run for a test.

tests/helpers/idp.py is our own small provider with knobs; this one is somebody else's
implementation of the same protocols, so the component is checked against what a real
deployment answers: RFC 9068 JWT access tokens (``typ: at+jwt``), RFC 7662 introspection
of client-credentials tokens (no ``sub``), RFC 7009 revocation, RFC 8707 audiences.

:func:`oidc_provider` starts ``node tests/oidc/provider.mjs`` on a free loopback port,
waits for its discovery document and stops it afterwards. Without ``node`` or the
installed package the test is skipped with how to install it (a failure in CI, where
ADMINSTATS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

__all__ = [
    "AUDIENCE",
    "CLIENT_ID",
    "INTROSPECTOR_ID",
    "OTHER_AUDIENCE",
    "SCOPE",
    "OIDCProvider",
    "jose_header",
    "oidc_provider",
]

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc"
AUDIENCE = "https://adminstats.example"
OTHER_AUDIENCE = "https://other.example"
SCOPE = "admin:stats"
CLIENT_ID = "adminstats-tests"  # gets (and revokes) tokens: the admin's machine client
INTROSPECTOR_ID = "adminstats-component"  # the component's introspection credentials
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_HTTP_TIMEOUT = 5.0


def jose_header(token: str, part: int = 0) -> dict[str, Any]:
    """The decoded JOSE header of a compact JWS (``part=1``: its claims), unverified."""
    segment = token.split(".")[part]
    header: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return header


@dataclass
class OIDCProvider:
    """A running provider: its endpoints (from its discovery document), the two
    clients' credentials, the current signing kids (RS256, ES256), its log file."""

    issuer: str
    token_url: str
    introspection_url: str
    revocation_url: str
    client_secret: str
    introspector_secret: str
    kids: list[str]
    log_path: Path

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Settings overrides for the component: discovery, audience, admin scope and
        introspection (make_settings sets an HS256 secret unless told not to)."""
        return {
            "jwt_secret": None,
            "oidc_issuer": self.issuer,
            "jwt_audience": AUDIENCE,
            "admin_scope": SCOPE,
            "introspection_url": self.introspection_url,
            "introspection_client_id": INTROSPECTOR_ID,
            "introspection_client_secret": self.introspector_secret,
            **extra,
        }

    async def _post(self, url: str, data: dict[str, str], auth: tuple[str, str]) -> Any:
        async with httpx2.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
            response = await http.post(url, data=data, auth=auth)
        assert response.status_code == 200, (url, response.status_code, response.text)
        return response.json() if response.content else None

    async def token(self, kind: str, *, audience: str = AUDIENCE) -> str:
        """A client_credentials access token for the resource ``<audience>/<kind>``:
        jwt-rs256, jwt-es256, opaque, short-jwt or short-opaque (see provider.mjs)."""
        body = await self._post(
            self.token_url,
            {"grant_type": "client_credentials", "scope": SCOPE, "resource": f"{audience}/{kind}"},
            (CLIENT_ID, self.client_secret),
        )
        assert body["scope"] == SCOPE, body
        value: str = body["access_token"]
        return value

    async def introspect(self, token: str) -> dict[str, Any]:
        """What the provider tells the component about ``token``."""
        answer: dict[str, Any] = await self._post(
            self.introspection_url, {"token": token}, (INTROSPECTOR_ID, self.introspector_secret)
        )
        return answer

    async def revoke(self, token: str) -> None:
        """RFC 7009 revocation, by the client the token was issued to."""
        await self._post(self.revocation_url, {"token": token}, (CLIENT_ID, self.client_secret))

    async def rotate(self) -> list[str]:
        """New signing keys (the previous ones stay published); the new kids."""
        async with httpx2.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
            response = await http.post(f"{self.issuer}/test/rotate")
        assert response.status_code == 200, (response.status_code, response.text)
        self.kids = list(response.json()["kids"])
        return self.kids


def _require_installed() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not on PATH: install Node.js 20 or later, then npm ci --prefix tests/oidc"
        )
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("oidc-provider is not installed: run `npm ci --prefix tests/oidc`")
    return node


def _ready_line(proc: subprocess.Popen[bytes], log_path: Path) -> dict[str, Any]:
    """The JSON line the script prints once it listens (bounded wait)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if not line:
        raise AssertionError(
            f"oidc-provider did not start:\n{log_path.read_text(errors='replace')}"
        )
    state: dict[str, Any] = json.loads(line)
    return state


def _discovered(issuer: str) -> dict[str, Any]:
    """The discovery document, once it answers naming this issuer (bounded)."""
    deadline = time.monotonic() + _START_TIMEOUT
    with httpx2.Client(timeout=1.0) as http:
        while True:
            with contextlib.suppress(httpx2.HTTPError):
                response = http.get(f"{issuer}/.well-known/openid-configuration")
                if response.status_code == 200:
                    metadata: dict[str, Any] = response.json()
                    assert metadata["issuer"] == issuer, response.text
                    return metadata
            assert time.monotonic() < deadline, f"no discovery document at {issuer}"
            time.sleep(0.05)


@contextlib.contextmanager
def oidc_provider(log_dir: Path, *, short_ttl: int = 2) -> Iterator[OIDCProvider]:
    """Run tests/oidc/provider.mjs; yields it once discovery answers; stops it after.

    Synchronous, so one provider can serve a whole module (its start, mostly Node
    loading the package, takes about a second) whatever event loop each test runs in.
    ``short_ttl`` is the lifetime (seconds) of the short-* tokens.
    """
    node = _require_installed()
    client_secret = secrets.token_urlsafe(24)
    introspector_secret = secrets.token_urlsafe(24)
    log_path = log_dir / "oidc-provider.log"
    env = {
        **os.environ,
        "OIDC_CLIENT_SECRET": client_secret,
        "OIDC_INTROSPECTOR_SECRET": introspector_secret,
    }
    args = ["--audience", AUDIENCE, "--audience", OTHER_AUDIENCE, "--short-ttl", str(short_ttl)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), *args],
            cwd=PROVIDER_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            state = _ready_line(proc, log_path)
            metadata = _discovered(state["issuer"])
            yield OIDCProvider(
                issuer=state["issuer"],
                token_url=metadata["token_endpoint"],
                introspection_url=metadata["introspection_endpoint"],
                revocation_url=metadata["revocation_endpoint"],
                client_secret=client_secret,
                introspector_secret=introspector_secret,
                kids=list(state["kids"]),
                log_path=log_path,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(_STOP_TIMEOUT)
            if proc.stdout is not None:
                proc.stdout.close()
