"""Introspection answers (RFC 7662) from the loopback provider (tests/helpers/idp.py): the
subject of a token without ``sub`` (client credentials), and ``iss``/``aud`` held to the
JWT rules.

Most cases call ``TokenVerifier`` directly (the claim rules are the verifier's); a few
go through a real server and client for the close a client sees and the connection log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asgi_adminstats import CloseCode
from asgi_adminstats.auth import AuthError, TokenVerifier

from helpers.idp import (
    IdentityProvider,
    identity_provider,
    token_verifier,
)
from support.loopback import client, closed, recv

INVALID = (int(CloseCode.UNAUTHORIZED), "unauthorized: invalid token")
FORBIDDEN = (int(CloseCode.FORBIDDEN), "forbidden: admin role required")
CONNECTIONS = "asgi_adminstats.connections"


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


async def _outcome(verifier: TokenVerifier, tok: str) -> str | tuple[int, str, str]:
    """The subject, or the close code, reason and log category of the refusal."""
    try:
        return (await verifier.verify(tok)).sub
    except AuthError as exc:
        return int(exc.code), exc.reason, exc.category


def _service(**claims: Any) -> dict[str, Any]:
    """A client-credentials answer: client_id, scope, exp, no sub (RFC 7662 §2.2)."""
    return {
        "client_id": "reporting",
        "scope": "admin:stats",
        "exp": int(time.time()) + 600,
        **claims,
    }


# --- the subject: sub, then username, then client_id -----------------------------------

SUBJECT_CASES: dict[str, tuple[dict[str, Any], str | tuple[int, str, str]]] = {
    "client credentials: client_id": (_service(), "reporting"),
    "username before client_id": (_service(username="ops-user"), "ops-user"),
    "sub before both": (_service(sub="u-1", username="ops-user"), "u-1"),
    "empty sub counts as missing": (_service(sub=""), "reporting"),
    "none of them": (_service(client_id=None), (*INVALID, "no_subject")),
    # A sub that is there but unusable is refused, never replaced by the client's id.
    "sub not a string": (_service(sub=42), (*INVALID, "invalid")),
    "client_id too long": (_service(client_id="c" * 256), (*INVALID, "invalid")),
    # A client-credentials token is an admin only by the rule: here, the scope.
    "without the admin scope": (_service(scope="read"), (*FORBIDDEN, "not_admin")),
}


@pytest.mark.parametrize("case", list(SUBJECT_CASES))
async def test_subject_of_an_introspected_token(
    tmp_path: Path, idp: IdentityProvider, case: str
) -> None:
    claims, expected = SUBJECT_CASES[case]
    async with token_verifier(
        tmp_path, **idp.introspection_settings(admin_scope="admin:stats")
    ) as verifier:
        assert await _outcome(verifier, idp.opaque(claims)) == expected


async def test_client_credentials_token_is_admitted_and_the_fallback_logged(
    start: Any, idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case end to end: an answer with active, client_id, exp, iss, aud,
    scope and no sub is admitted as its client; the log says which claims were
    missing, and a refusal says why in one word. Never the token."""
    _, addr = await start(
        **idp.introspection_settings(
            admin_scope="admin:stats", jwt_audience="https://stats.example"
        )
    )
    good = idp.opaque(_service(aud="https://stats.example"))
    nobody = idp.opaque(_service(client_id=None, aud="https://stats.example"))
    with caplog.at_level(logging.INFO):
        async with client(f"ws://{addr}/admin/ws", tok=good) as ws:
            assert (await recv(ws))["user"] == {"sub": "reporting"}
        async with client(f"ws://{addr}/admin/ws", tok=nobody) as ws:
            assert await closed(ws) == INVALID
    log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("asgi_adminstats"))
    assert "introspected token without sub or username: the subject is its client_id" in log
    assert "connection accepted: sub=reporting client=127.0.0.1" in log
    assert "the introspection answer has no sub, username, client_id" in log
    assert "connection rejected: reason=no_subject sub=- client=127.0.0.1 code=4401" in log
    assert good not in log and nobody not in log


# --- iss and aud: the JWT rules ---------------------------------------------------------

AUDIENCE = "https://stats.example"
CLAIM_CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "ours": ({"aud": AUDIENCE}, None),
    "another resource": ({"aud": "https://billing.example"}, "audience"),
    "list with ours": ({"aud": ["https://billing.example", AUDIENCE]}, None),
    "list without ours": ({"aud": ["https://billing.example"]}, "audience"),
    "no aud": ({"aud": None}, "audience"),
    "aud not a string": ({"aud": 7}, "audience"),
    "list of non-strings": ({"aud": [AUDIENCE, 7]}, "audience"),
    "issuer with a trailing slash": ({"aud": AUDIENCE, "iss": "{issuer}/"}, "issuer"),
    "another issuer": ({"aud": AUDIENCE, "iss": "https://idp.evil"}, "issuer"),
    "no iss": ({"aud": AUDIENCE, "iss": None}, "issuer"),
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
@pytest.mark.parametrize("issuer_setting", ["jwt_issuer", "oidc_issuer"])
async def test_audience_and_issuer_of_an_introspection_answer(
    tmp_path: Path, idp: IdentityProvider, case: str, issuer_setting: str
) -> None:
    """With ``jwt_audience`` and an issuer configured (``jwt_issuer``, else
    ``oidc_issuer``), an answer must carry them as a JWT must: ``iss`` exactly,
    ``aud`` a string or a list holding ours. The answer has an admin ``scope``: the
    audience alone decides. A refused answer is not cached."""
    changes, refusal = CLAIM_CASES[case]
    claims = _service(**changes)
    if isinstance(claims.get("iss"), str):
        claims["iss"] = claims["iss"].format(issuer=idp.issuer)
    settings = idp.introspection_settings(
        admin_scope="admin:stats", jwt_audience=AUDIENCE, **{issuer_setting: idp.issuer}
    )
    async with token_verifier(tmp_path, **settings) as verifier:
        tok = idp.opaque(claims)
        for _ in range(2):
            expected = "reporting" if refusal is None else (*INVALID, refusal)
            assert await _outcome(verifier, tok) == expected
    assert idp.requests["introspect"] == (1 if refusal is None else 2)


async def test_without_audience_or_issuer_settings_neither_is_checked(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with token_verifier(
        tmp_path, **idp.introspection_settings(admin_scope="admin:stats")
    ) as verifier:
        tok = idp.opaque(_service(aud="https://billing.example", iss="https://elsewhere"))
        assert await _outcome(verifier, tok) == "reporting"


async def test_foreign_audience_is_refused_at_the_handshake(
    start: Any, idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's report: a token for another resource with scope admin:stats was
    accepted. Now 4401, logged as ``reason=audience``; JWTs log it the same way."""
    _, addr = await start(
        **idp.introspection_settings(
            jwks_url=idp.jwks_url,
            jwt_issuer=idp.issuer,
            admin_scope="admin:stats",
            jwt_audience=AUDIENCE,
        )
    )
    opaque = idp.opaque(_service(aud="https://billing.example"))
    signed = idp.mint("ES256", idp.claims("svc", aud="https://billing.example"))
    foreign_iss = idp.mint("ES256", idp.claims("svc", aud=AUDIENCE, iss="https://idp.evil"))
    with caplog.at_level(logging.INFO, logger=CONNECTIONS):
        for tok in (opaque, signed, foreign_iss):
            async with client(f"ws://{addr}/admin/ws", tok=tok) as ws:
                assert await closed(ws) == INVALID
        async with client(f"ws://{addr}/admin/ws", tok=idp.opaque(_service(aud=AUDIENCE))) as ws:
            assert (await recv(ws))["user"] == {"sub": "reporting"}
    reasons = [r.getMessage().split()[2] for r in caplog.records if "rejected" in r.getMessage()]
    assert reasons == ["reason=audience", "reason=audience", "reason=issuer"]
