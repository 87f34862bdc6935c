"""Tools for the security tests: hostile clients, log capture, input generators.

Every wait here is bounded by a timeout, and every loop by a count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import re
import socket
import string
import struct
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from support.loopback import ORIGIN, recv, recv_type, token
from support.wire import handshake_request

__all__ = [
    "JSON",
    "SERVER_LOGGERS",
    "LogCapture",
    "RawClient",
    "StatsWatcher",
    "assert_serves_healthy_client",
    "attempt",
    "bad_messages",
    "capture_logs",
    "collect",
    "is_valid_client_message",
    "offered_tokens",
    "split_quotes",
]

URL = "ws://{addr}/admin/ws"
_QUIET = 0.3  # RawClient.read_available: this long without a byte ends a read


# --- a well-behaved client ----------------------------------------------------------


async def assert_serves_healthy_client(
    addr: str, *, source: str = "127.0.0.1", timeout: float = 5.0
) -> None:
    """A good admin token still gets ``connected`` and then ``stats_update``.

    ``source``: the local address to connect from (another one than a flood's, whose
    attempts are rate limited). The subject is fresh, so no per-subject cap applies.
    """
    sub = f"healthy-{uuid.uuid4().hex[:8]}"
    async with connect(
        URL.format(addr=addr),
        additional_headers={"Authorization": f"Bearer {token(sub)}"},
        origin=ORIGIN,
        open_timeout=timeout,
        local_addr=(source, 0),
    ) as ws:
        hello = await recv(ws, timeout)
        assert hello["type"] == "connected", hello
        assert hello["user"] == {"sub": sub}
        snapshot = await recv_type(ws, "stats_update", timeout)
        assert "online" in snapshot["data"]


async def attempt(
    addr: str,
    *,
    source: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Headers, bytes]:
    """One handshake and nothing more: status, response headers, body; 101 is closed at once."""
    try:
        async with connect(
            URL.format(addr=addr),
            additional_headers=dict(headers or {}),
            origin=ORIGIN,
            open_timeout=timeout,
            local_addr=(source, 0),
        ) as ws:
            assert ws.response is not None
            return ws.response.status_code, ws.response.headers, b""
    except InvalidStatus as exc:
        response = exc.response
        return response.status_code, response.headers, bytes(response.body or b"")


@dataclass
class StatsWatcher:
    """A healthy admin client reading in the background: when each ``stats_update`` came.

    Like a real dashboard it answers the server's heartbeat ``ping`` with ``pong``.
    """

    ws: ClientConnection
    arrivals: list[float] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "stats_update":
                    self.arrivals.append(time.monotonic())
                else:
                    self.others.append(message)
                if message["type"] == "ping":
                    await self.ws.send('{"type": "pong"}')

    def max_gap(self, start: float, end: float) -> float:
        """The longest time in [start, end] without a snapshot."""
        stamps = [start, *(t for t in self.arrivals if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(stamps))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- a hand-written client that only does what it is told ---------------------------


class RawClient:
    """A plain TCP socket speaking WebSocket by hand.

    Nothing reads it in the background (not even asyncio's stream buffer): bytes stay in
    the kernel until the test calls a read, so it can play a client that stops reading.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.eof = False

    @classmethod
    async def open(
        cls, addr: str, *, source: str = "127.0.0.1", rcvbuf: int | None = None
    ) -> RawClient:
        host, port = addr.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect(), so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        sock.bind((source, 0))
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, int(port))), 5)
        return cls(sock)

    @classmethod
    async def handshake(
        cls, addr: str, headers: Mapping[str, str], *, rcvbuf: int | None = None
    ) -> tuple[RawClient, bytes]:
        """Open, upgrade, and read the response head (everything up to the blank line)."""
        raw = await cls.open(addr, rcvbuf=rcvbuf)
        await raw.send(handshake_request(addr, headers))
        head = b""
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in head:
                chunk = await asyncio.get_running_loop().sock_recv(raw.sock, 1)
                assert chunk, f"EOF during the handshake: {head!r}"
                head += chunk
        return raw, head

    async def send(self, data: bytes) -> None:
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(self.sock, data), 5)

    async def send_frame(
        self, opcode: int, payload: bytes, *, declared_length: int | None = None
    ) -> None:
        """One masked client frame; ``declared_length`` lies about the payload size."""
        length = len(payload) if declared_length is None else declared_length
        head = bytes([0x80 | opcode])
        if length < 126:
            head += bytes([0x80 | length])
        elif length < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.send(head + mask + masked)

    async def read_available(self, limit: float, quiet: float = _QUIET) -> bytes:
        """Read until ``quiet`` seconds pass without a byte, EOF, or ``limit`` seconds."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        deadline = loop.time() + limit
        while not self.eof and loop.time() < deadline:
            wait = min(quiet, deadline - loop.time())
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), wait)
            except TimeoutError:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


# --- what the server logs -----------------------------------------------------------


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, logger: str | None = None) -> list[str]:
        """Each record as the log would show it: message, and traceback if any."""
        out = []
        for record in self.records:
            if logger is not None and record.name != logger:
                continue
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            out.append(text)
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.lines())


#: The server's loggers, each at the most verbose level a production server runs it:
#: uvicorn at its default INFO (at DEBUG it logs request headers: see test_security_leaks).
SERVER_LOGGERS: Mapping[str, int] = {
    "asgi_adminstats": logging.DEBUG,
    "uvicorn": logging.INFO,
    "uvicorn.error": logging.INFO,
    "uvicorn.access": logging.INFO,
}


@contextlib.contextmanager
def capture_logs(
    loggers: Iterable[str] | Mapping[str, int] = SERVER_LOGGERS,
) -> Iterator[LogCapture]:
    """Every record of the given loggers, at DEBUG or the level given per logger.

    uvicorn's loggers do not propagate to the root (so pytest's caplog misses them), and
    uvicorn resets their handlers when it starts: enter this after the server started.
    A record is captured once even if it passes through several of the loggers.
    """
    levels = (
        dict(loggers) if isinstance(loggers, Mapping) else dict.fromkeys(loggers, logging.DEBUG)
    )
    capture = LogCapture()
    seen: set[int] = set()

    def once(record: logging.LogRecord) -> bool:
        if id(record) in seen:
            return False
        seen.add(id(record))
        return True

    capture.addFilter(once)
    saved = []
    for name, level in levels.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger, level in saved:
            logger.removeHandler(capture)
            logger.setLevel(level)


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def split_quotes(message: str) -> tuple[str, list[str]]:
    """An error message's own words (quotes emptied), and what it quotes (decoded)."""
    quoted = [json.loads(f'"{literal}"') for literal in _QUOTED.findall(message)]
    return _QUOTED.sub('""', message), quoted


# --- generated input ----------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_NAMES = ("stats", "notifications")
_TYPES = ("ping", "pong", "auth", "subscribe", "unsubscribe")


def is_valid_client_message(value: object) -> bool:
    """PROTOCOL.md section 3, read independently of the server's parser."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return False
    kind = value["type"]
    if kind in ("ping", "pong"):
        return True
    if kind == "auth":
        return isinstance(value.get("token"), str) and bool(value["token"])
    if kind in ("subscribe", "unsubscribe"):
        names = value.get("subscriptions")
        if not isinstance(names, list) or not all(n in _NAMES for n in names):
            return False
        since = value.get("since")
        return kind == "unsubscribe" or since is None or isinstance(since, str | int)
    return False


def _is_valid_text(text: str) -> bool:
    try:
        return is_valid_client_message(json.loads(text))
    except ValueError:
        return False


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@st.composite
def _wrong_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A known type with fields of the wrong type or value."""
    kind = draw(st.sampled_from(("auth", "subscribe", "unsubscribe")))
    message: dict[str, Any] = {"type": kind}
    if kind == "auth":
        message["token"] = draw(JSON.filter(lambda v: not isinstance(v, str)) | st.just(""))
    else:
        message["subscriptions"] = draw(
            JSON.filter(lambda v: not isinstance(v, list))
            | st.lists(st.text(max_size=12) | JSON, min_size=1, max_size=4)
        )
        if kind == "subscribe" and draw(st.booleans()):
            message["since"] = draw(JSON)
    return message


_UTF8_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)

#: Text frames a client may send that are not valid messages: not JSON, JSON that is not
#: an object, objects without a string ``type``, unknown types, known types with wrong
#: fields. Each at most a few hundred characters (under ``max_message_bytes``).
bad_messages = st.one_of(
    _UTF8_TEXT,  # mostly not JSON at all
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),  # binary-looking text
    JSON.filter(lambda v: not isinstance(v, dict)).map(_dump),
    st.dictionaries(st.text(max_size=8), JSON, max_size=4).map(_dump),
    st.builds(lambda kind, rest: _dump({**rest, "type": kind}), JSON, st.just({})),
    st.builds(
        lambda kind, rest: _dump({**rest, "type": kind}),
        st.text(st.characters(codec="utf-8"), max_size=200).filter(lambda t: t not in _TYPES),
        st.dictionaries(st.text(max_size=8), JSON, max_size=3),
    ),
    _wrong_fields().map(_dump),
).filter(lambda text: not _is_valid_text(text))

_B64URL = string.ascii_letters + string.digits + "-_"


def _segment(value: object) -> str:
    raw = json.dumps(value).encode() if not isinstance(value, bytes) else value
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


#: Random strings shaped like a JWT: random header/claims/signature segments.
_jwt_shaped = st.builds(
    lambda header, claims, signature: ".".join(
        (_segment(header), _segment(claims), _segment(signature))
    ),
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "none", "RS256", "HS512", "ES256"]) | JSON}
    )
    | JSON,
    st.fixed_dictionaries(
        {"sub": st.text(max_size=10), "role": st.just("admin"), "exp": st.integers()}
    )
    | JSON,
    st.binary(max_size=64),
)
_header_safe = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    | st.characters(min_codepoint=0xA1, max_codepoint=0xFF),
    min_size=1,
    max_size=300,
)
_token_chars = st.text(
    st.sampled_from(sorted(set(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"))),
    min_size=1,
    max_size=300,
)


def offered_tokens() -> st.SearchStrategy[tuple[str, str]]:
    """(where, token): random and binary-looking tokens in each place a token may go.

    ``header``: ``Authorization: Bearer`` (latin-1 without controls or spaces);
    ``subprotocol``: ``bearer.<token>`` (HTTP token characters only); ``message``: the
    first ``auth`` message (any Unicode text, control characters included).
    """
    binary_looking = st.binary(min_size=1, max_size=200).map(
        lambda b: base64.urlsafe_b64encode(b).decode()
    )
    return st.one_of(
        st.tuples(st.just("header"), _header_safe | binary_looking | _jwt_shaped),
        st.tuples(
            st.just("subprotocol"),
            _token_chars | binary_looking.map(lambda t: t.rstrip("=")) | _jwt_shaped,
        ),
        st.tuples(
            st.just("message"),
            st.text(st.characters(codec="utf-8"), min_size=1, max_size=300)
            | st.binary(min_size=1, max_size=200).map(lambda b: b.decode("latin-1"))
            | binary_looking
            | _jwt_shaped,
        ),
    )


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` values drawn by Hypothesis (generation only: a barrage, not a search)."""
    drawn: list[Any] = []

    @hsettings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(value: Any) -> None:
        drawn.append(value)

    draw()
    return drawn[:count]
