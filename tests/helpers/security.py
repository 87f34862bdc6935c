"""What the security tests share: URLs, tokens, the error and limit checks.

The security tests (tests/security/test_security_*.py) cover the threats this endpoint faces and
the defence against each.

Every test starts a real uvicorn server on loopback and attacks it with real clients (the
``websockets`` client, or a socket written by hand in ``tests/helpers/hostile.py`` when a
client has to misbehave below the WebSocket library). Each test asserts exactly what the
attacker gets (HTTP status, or close code and reason) and then that the server still
serves a well-behaved admin (``assert_serves_healthy_client``: ``connected`` and a
``stats_update``). Tests marked ``xfail(strict=True)`` show a defect that is still open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey
from websockets.asyncio.client import ClientConnection

from helpers.hostile import split_quotes
from support.loopback import SECRET, recv_type

__all__ = [
    "CONNECTIONS",
    "ERROR_CODES",
    "EXCERPT",
    "LIMIT",
    "check_error",
    "expiring_token",
    "padded",
    "ping_pong",
    "signed",
    "url",
]


CONNECTIONS = "asgi_adminstats.connections"


def url(addr: str) -> str:
    return f"ws://{addr}/admin/ws"


def signed(claims: Mapping[str, Any], secret: str = SECRET) -> str:
    return jwt.encode({"alg": "HS256"}, dict(claims), OctKey.import_key(secret))


async def ping_pong(ws: ClientConnection) -> None:
    await ws.send('{"type": "ping"}')
    assert (await recv_type(ws, "pong"))["type"] == "pong"


ERROR_CODES = {"bad_message", "unknown_type", "invalid_subscription"}
EXCERPT = 32  # characters of client input an error may quote (then "…")


def check_error(error: dict[str, Any], sent: str) -> None:
    """An ``error``: a known code, escaped ASCII, no traceback, at most a short excerpt."""
    message = error["message"]
    assert error["code"] in ERROR_CODES, (error, sent)
    assert message.isascii() and message.isprintable(), (message, sent)
    assert "Traceback" not in message and 'File "' not in message, (message, sent)
    words, quoted = split_quotes(message)
    assert len(words) < 100, (message, sent)
    assert len(quoted) <= 1, (message, sent)
    for excerpt in quoted:
        assert len(excerpt.removesuffix("…")) <= EXCERPT, (message, sent)


LIMIT = 1024


def padded(kind: str, size: int, pad: str = "y", **fields: str) -> str:
    """A message of ``kind`` exactly ``size`` UTF-8 bytes long, mostly ``pad``."""
    bare = len(json.dumps({"type": kind, **fields, "pad": ""}, ensure_ascii=False).encode())
    width = len(pad.encode())
    filler = pad * ((size - bare) // width) + "y" * ((size - bare) % width)
    text = json.dumps({"type": kind, **fields, "pad": filler}, ensure_ascii=False)
    assert len(text.encode()) == size
    return text


def expiring_token(seconds: float, sub: str = "alice") -> tuple[str, float]:
    exp = time.time() + seconds
    return signed({"sub": sub, "role": "admin", "exp": exp}), exp
