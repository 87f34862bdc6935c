"""Hostile input against a real server (issue 15, items 5 to 8): deep JSON, validly signed
tokens with odd claims, a hostile identity provider's JWKS, log injection, expired
tokens within the leeway, and ``since`` ids in other scripts' digits.

Every test here failed on commit a6d39f6 (a traceback and no close frame, 1011, a forged
log line, a replay from "٣", a JWKS read whole) and passes now.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib
import json
import logging
import pkgutil
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from asgi_adminstats import CloseCode
from asgi_adminstats.auth import keys
from asgi_adminstats.telemetry import EscapeArgs, escape

from helpers.hostile import capture_logs
from helpers.idp import IdentityProvider, identity_provider
from support.loopback import SECRET, client, closed, recv, recv_type, token

INVALID = (CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
EXPIRED = (CloseCode.UNAUTHORIZED, "unauthorized: token expired")
UNAVAILABLE = (CloseCode.UNAUTHORIZED, "unauthorized: authorization server unavailable")
DEEP = "[" * 2000 + "]" * 2000  # 4000 bytes: under max_message_bytes


def _url(addr: str) -> str:
    return f"ws://{addr}/admin/ws"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256(claims: dict[str, Any]) -> str:
    """A validly signed HS256 token carrying exactly ``claims``, odd ones included.

    By hand: joserfc refuses to encode a lone surrogate, and JSON's ``NaN`` or a
    400-digit ``exp`` are what a hostile issuer would send, not what a library makes.
    """
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())  # ASCII: "\\ud800" stays an escape
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "role": "admin", "iat": now, "exp": now + 600, **changes}
    return {name: value for name, value in claims.items() if value is not None}


def _no_failures(records: list[logging.LogRecord]) -> list[str]:
    """Records with a traceback, or from a logger other than ours at ERROR."""
    return [
        r.getMessage()
        for r in records
        if r.exc_info or (r.levelno >= logging.ERROR and not r.name.startswith("asgi_adminstats"))
    ]


async def _messages_until_closed(ws: ClientConnection, timeout: float = 5.0) -> list[str]:
    """Every message's type until the server closes (bounded)."""
    types: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                types.append(json.loads(raw)["type"])
    except Exception:  # the close itself, or the bound: the caller checks ws.close_code
        pass
    return types


async def _still_serves(addr: str) -> None:
    async with client(_url(addr), tok=token("healthy")) as ws:
        assert (await recv(ws))["type"] == "connected"
        await ws.send('{"type": "ping"}')
        await recv_type(ws, "pong")


# --- item 5: deep JSON ------------------------------------------------------------------


async def test_deep_json_before_auth_closes_with_a_frame_and_no_traceback(start: Any) -> None:
    stats, addr = await start()
    with capture_logs() as logs:
        async with client(_url(addr)) as ws:
            await ws.send(DEEP)
            code_reason = await closed(ws)
    # Before the fix: RecursionError, a 55-line traceback and no close frame (1006).
    assert code_reason == (CloseCode.UNAUTHORIZED, "unauthorized: expected an auth message")
    assert _no_failures(logs.records) == [], logs.text
    assert "Traceback" not in logs.text and "RecursionError" not in logs.text
    assert "connection rejected: reason=no_token sub=- client=127.0.0.1" in logs.text
    assert stats.metrics.tally.attempts["rejected", "no_token"] == 1
    await _still_serves(addr)


async def test_deep_json_after_auth_is_a_bad_message_and_the_session_goes_on(
    start: Any,
) -> None:
    _, addr = await start()
    with capture_logs() as logs:
        async with client(_url(addr), tok=token()) as ws:
            await recv_type(ws, "connected")
            for nested in (DEEP, '{"a":' * 600 + "1" + "}" * 600):
                await ws.send(nested)
                error = await recv_type(ws, "error")
                assert error["code"] == "bad_message", error
            await ws.send('{"type": "ping"}')
            await recv_type(ws, "pong")  # before the fix: closed 1011 at the first one
    assert _no_failures(logs.records) == [], logs.text
    assert not [r for r in logs.records if r.levelno >= logging.ERROR], logs.text


async def test_an_unexpected_failure_while_authenticating_closes_1011_in_one_line(
    start: Any,
) -> None:
    """A verifier that raises something unforeseen (here a broken ``admin_rule``): close
    1011 "internal error" with a frame, one ERROR line without the input, counted."""

    def broken_rule(claims: Any) -> bool:
        raise ZeroDivisionError

    stats, addr = await start(admin_rule=broken_rule)
    tok = token("carol")
    with capture_logs() as logs:
        async with client(_url(addr), tok=tok) as ws:
            by_header = await closed(ws)
        async with client(_url(addr)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tok}))
            by_message = await closed(ws)
    internal = (CloseCode.INTERNAL_ERROR, "internal error")
    assert (by_header, by_message) == (internal, internal)
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(": ", 1)[1] for r in errors] == [
        "verifying a token failed: ZeroDivisionError"
    ] * 2, logs.text
    assert not any(r.exc_info for r in logs.records), logs.text
    assert all(part not in logs.text for part in tok.split("."))
    assert logs.text.count("connection rejected: reason=internal sub=- client=127.0.0.1") == 2
    assert stats.metrics.tally.attempts["rejected", "internal"] == 2


# --- item 6: validly signed tokens with odd claims --------------------------------------

ODD_CLAIMS: dict[str, dict[str, Any]] = {
    "exp 10**400": _claims(exp=10**400),
    "exp NaN": _claims(exp=float("nan")),
    "exp Infinity": _claims(exp=float("inf")),
    "exp a string": _claims(exp="soon"),
    "exp true": _claims(exp=True),
    "exp past year 9999": _claims(exp=253_402_300_800),
    "sub a lone surrogate": _claims(sub="\ud800"),
    "sub 256 characters": _claims(sub="a" * 256),
    "sub an int": _claims(sub=5),
    "sub a list": _claims(sub=["alice"]),
    "sub empty": _claims(sub=""),
    "nbf 10**400": _claims(nbf=10**400),
    "nbf NaN": _claims(nbf=float("nan")),
    "iat a string": _claims(iat="now"),
    "iat -Infinity": _claims(iat=float("-inf")),
}


async def _refused_at(addr: str, where: str, tok: str) -> tuple[int, str]:
    if where == "header":
        async with client(_url(addr), tok=tok) as ws:
            return await closed(ws)
    if where == "message":
        async with client(_url(addr)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tok}))
            return await closed(ws)
    async with client(_url(addr), tok=token("alice")) as ws:  # a refresh mid-session
        await recv_type(ws, "connected")
        await ws.send(json.dumps({"type": "auth", "token": tok}))
        return await closed(ws)


@pytest.mark.parametrize("where", ["header", "message", "refresh"])
async def test_odd_claims_in_a_validly_signed_token_close_4401_invalid(
    start: Any, where: str
) -> None:
    """Before the fix: exp 10**400 raised OverflowError, sub "\\ud800" UnicodeEncodeError
    (a traceback and no close frame; 1011 on refresh), a 256-character sub got in."""
    _, addr = await start()
    with capture_logs() as logs:
        outcomes = {
            name: await _refused_at(addr, where, _hs256(c)) for name, c in ODD_CLAIMS.items()
        }
    assert outcomes == dict.fromkeys(ODD_CLAIMS, INVALID)
    assert _no_failures(logs.records) == [], logs.text
    assert not [r for r in logs.records if r.levelno >= logging.ERROR], logs.text
    # The longest subject OIDC allows still gets in, whole.
    longest = "é" * 255
    async with client(_url(addr), tok=_hs256(_claims(sub=longest))) as ws:
        assert (await recv(ws))["user"] == {"sub": longest}


# --- item 6b: a hostile identity provider -----------------------------------------------


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


async def _endless(chunk: int = 64 * 1024, most: int = 1024) -> AsyncIterator[bytes]:
    yield b'{"keys": ['
    for _ in range(most):  # 64 MiB at most: "endless" for a 256 KiB limit
        yield b" " * chunk


async def _drip(every: float = 0.05, most: int = 600) -> AsyncIterator[bytes]:
    yield b'{"keys": ['
    for _ in range(most):  # 30 s at most
        await asyncio.sleep(every)
        yield b" "


async def test_an_endless_jwks_body_is_cut_at_the_limit(start: Any, idp: IdentityProvider) -> None:
    """Before the fix the whole body was read, then measured: all 64 MiB of it."""
    idp.jwks_body = _endless
    _, addr = await start(jwt_secret=None, jwks_url=idp.jwks_url, jwks_refetch_interval=0.2)
    tok = idp.mint("RS256", idp.claims())
    async with client(_url(addr), tok=tok) as ws:
        assert await closed(ws, timeout=10) == UNAVAILABLE
    await asyncio.sleep(0.5)  # whatever the provider still had in flight
    assert 0 < idp.jwks_streamed < 16 * 2**20, idp.jwks_streamed
    idp.jwks_body = None  # the provider is fixed: keys load on the next allowed fetch
    for _ in range(50):
        await asyncio.sleep(0.1)
        async with client(_url(addr), tok=tok) as ws:
            if (await _messages_until_closed(ws, 2))[:1] == ["connected"]:
                break
    else:
        pytest.fail("the server never loaded the fixed JWKS")


async def test_a_dripping_jwks_fetch_gives_up_at_its_deadline(
    start: Any, idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte arrives well within the per-read timeout; before the fix nothing bounded
    the whole fetch, and the handshake waited as long as the provider dripped."""
    monkeypatch.setattr(keys, "_FETCH_TIMEOUT", 1.0)
    idp.jwks_body = _drip
    _, addr = await start(jwt_secret=None, jwks_url=idp.jwks_url)
    async with client(_url(addr), tok=idp.mint("RS256", idp.claims())) as ws:
        assert await closed(ws, timeout=10) == UNAVAILABLE


async def test_a_declared_oversized_jwks_is_refused_before_its_body(
    start: Any, idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Content-Length over the limit is refused at once, not after the fetch deadline
    (20 s here, twice the client's wait)."""
    monkeypatch.setattr(keys, "_FETCH_TIMEOUT", 20.0)
    idp.jwks_body = _drip
    idp.jwks_headers = {"content-length": str(2**30)}
    _, addr = await start(jwt_secret=None, jwks_url=idp.jwks_url)
    async with client(_url(addr), tok=idp.mint("RS256", idp.claims())) as ws:
        assert await closed(ws, timeout=10) == UNAVAILABLE


# --- item 7: log injection --------------------------------------------------------------

FORGED = "connection accepted: sub=root client=10.0.0.1"


@pytest.mark.parametrize(
    ("sub", "shown"),
    [
        ("root\n" + FORGED, "sub=root\\x0a" + FORGED),
        ("root\r\n" + FORGED, "sub=root\\x0d\\x0a" + FORGED),
        ("ro\x00ot", "sub=ro\\x00ot"),
        ("root\u2028" + FORGED, "sub=root\\u2028" + FORGED),
        ("\x1b[2Jroot", "sub=\\x1b[2Jroot"),
        ("back\\x0aslash", "sub=back\\\\x0aslash"),
    ],
    ids=["newline", "crlf", "nul", "line separator", "ansi escape", "a typed escape"],
)
async def test_a_subject_cannot_forge_or_garble_log_lines(start: Any, sub: str, shown: str) -> None:
    _, addr = await start()
    with capture_logs() as logs:
        async with client(_url(addr), tok=_hs256(_claims(sub=sub))) as ws:
            assert (await recv(ws))["user"] == {"sub": sub}  # the client sees it as is
            await ws.send('{"type": "auth", "token": "' + token("mallory") + '"}')
            await closed(ws)
    lines = logs.lines()
    assert any(shown in line for line in lines), logs.text
    for line in lines:
        assert line.isprintable(), repr(line)  # one record, one line, nothing raw
    assert not any(line.startswith(FORGED) for line in "\n".join(lines).splitlines())


# --- item 8: expiry within the leeway; since in other scripts' digits -------------------


@pytest.mark.parametrize("where", ["header", "message"])
async def test_an_expired_token_within_the_leeway_is_refused_at_the_handshake(
    start: Any, where: str
) -> None:
    """Before: expired 20 s ago passed the 30 s leeway, got `connected` and a snapshot,
    then 4401 at once. Now refused before anything is sent."""
    _, addr = await start(jwt_leeway=30)
    tok = _hs256(_claims(exp=int(time.time()) - 20))
    async with client(_url(addr), tok=tok if where == "header" else None) as ws:
        if where == "message":
            await ws.send(json.dumps({"type": "auth", "token": tok}))
        sent = await _messages_until_closed(ws)
    assert sent == []
    assert (ws.close_code, ws.close_reason) == EXPIRED
    # And as a refresh: closed, never an extension.
    async with client(_url(addr), tok=token("alice")) as ws:
        await recv_type(ws, "connected")
        await ws.send(json.dumps({"type": "auth", "token": tok}))
        assert await closed(ws) == EXPIRED


# Other bad ids ("-1", 1.5, 10**18, ...) are the parser's unit tests (test_protocol).
@pytest.mark.parametrize("since", ["²", "٣", "３", "1" * 19])
async def test_since_outside_ascii_digits_is_a_bad_message_and_replays_nothing(
    start: Any, since: object
) -> None:
    stats, addr = await start()
    ids = [(await stats.record_action("BAN_PLAYER", "alice", "PLAYER", n))["id"] for n in range(5)]
    with capture_logs() as logs:
        async with client(_url(addr), tok=token()) as ws:
            await recv_type(ws, "connected")
            subscribe = {"type": "subscribe", "subscriptions": ["notifications"], "since": since}
            await ws.send(json.dumps(subscribe))
            error = await recv_type(ws, "error")
            await ws.send('{"type": "ping"}')
            await recv_type(ws, "pong")
            # An id in ASCII digits: only this request replays (each action once).
            await ws.send(json.dumps({**subscribe, "since": str(ids[2])}))
            replayed = [(await recv_type(ws, "audit_action"))["data"] for _ in range(2)]
    assert error["code"] == "bad_message", error
    assert [(a["id"], a["replayed"]) for a in replayed] == [(ids[3], True), (ids[4], True)]
    assert not [r for r in logs.records if r.levelno >= logging.WARNING], logs.text


# --- item 7, without a server: the escaping, and that every logger has it ---------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("alice", "alice"),
        ("a\nb\r\x00\x7f\x85", "a\\x0ab\\x0d\\x00\\x7f\\x85"),
        ("\u2028\u2029\u202e\ufeff\ud800", "\\u2028\\u2029\\u202e\\ufeff\\ud800"),
        ("tab\there", "tab\\x09here"),
        ("é ü 日本", "é ü 日本"),
        ("C:\\x0a", "C:\\\\x0a"),
    ],
)
def test_escape_shows_controls_separators_and_surrogates_as_escapes(raw: str, shown: str) -> None:
    assert escape(raw) == shown
    shown.encode()  # a UTF-8 log handler can always write it


def test_escape_bounds_the_length() -> None:
    assert escape("a" * 255) == "a" * 255  # the longest OIDC subject, whole
    long = escape("\n" * 10_000)
    assert len(long) <= 513 and long.endswith("\u2026") and long.startswith("\\x0a")


def test_every_logger_of_the_component_escapes_its_arguments() -> None:
    package = importlib.import_module("asgi_adminstats")
    for module in pkgutil.walk_packages(package.__path__, "asgi_adminstats."):
        if not module.name.endswith(".__main__"):  # that one runs the command line
            importlib.import_module(module.name)
    ours = [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.split(".")[0] == "asgi_adminstats" and isinstance(logger, logging.Logger)
    ]
    assert len(ours) >= 10
    unescaped = [x.name for x in ours if not any(isinstance(f, EscapeArgs) for f in x.filters)]
    assert unescaped == [], "use asgi_adminstats.telemetry.get_logger for these"
