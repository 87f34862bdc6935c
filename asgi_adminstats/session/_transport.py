"""What a session needs of its WebSocket, and the one that Starlette and the server give.

The frames after ``connected`` go to the server's own ``send``: Starlette's state
checks are for the handshake, the ``connected`` message and the close, which go
through its ``WebSocket``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from starlette.types import Message, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..delivery import Close

__all__ = ["GONE", "StarletteTransport", "Transport", "close_within"]

#: What a transport raises when the client left (not a failure of the session).
GONE: tuple[type[Exception], ...] = (WebSocketDisconnect, OSError)


class Transport(Protocol):
    @property
    def scope(self) -> Scope: ...

    async def accept(self, subprotocol: str | None) -> None: ...

    def receive(self) -> Awaitable[Message]:
        """The next ASGI message from the client (``websocket.receive`` or ``.disconnect``)."""
        ...

    async def send_first(self, text: str) -> None:
        """The ``connected`` message, right after the handshake and with its checks."""

    def send_text(self, text: str) -> Awaitable[None]:
        """A frame after ``connected``; raises one of ``GONE`` if the client left."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class StarletteTransport:
    """Starlette's ``WebSocket`` with the server's raw ``send`` beside it."""

    __slots__ = ("_send", "_ws")

    def __init__(self, websocket: WebSocket, send: Send) -> None:
        self._ws = websocket
        self._send = send

    @property
    def scope(self) -> Scope:
        return self._ws.scope

    async def accept(self, subprotocol: str | None) -> None:
        await self._ws.accept(subprotocol=subprotocol)

    def receive(self) -> Awaitable[Message]:
        # Starlette's own coroutine, not one wrapping it: an idle session's reader waits
        # here for as long as the session lasts, and every frame held costs memory.
        return self._ws.receive()

    async def send_first(self, text: str) -> None:
        await self._ws.send_text(text)

    def send_text(self, text: str) -> Awaitable[None]:
        # Not a coroutine of its own: the server's send is what start_eagerly steps.
        return self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


async def close_within(transport: Transport, close: Close, seconds: float) -> bool:
    """Close; False if the client did not take the close frame within ``seconds``."""
    # Bounded: uvicorn's send waits for the socket to drain, and a client that stopped
    # reading never lets it; give up and let the server drop the transport.
    # Not wait_for: a server whose close() swallows cancellation (uvicorn's legacy
    # websockets) would hold us past the bound; a cancelled close is left to end.
    closing = asyncio.create_task(transport.close(close.code, close.reason))
    closing.add_done_callback(_consume)
    done, _ = await asyncio.wait([closing], timeout=seconds)
    if not done:
        closing.cancel()
        return False
    return True


def _consume(task: asyncio.Task[None]) -> None:
    # A close to a client that already left fails (OSError, a disconnect, or Starlette's
    # RuntimeError): nothing is left to tell it, and nothing to report.
    if not task.cancelled():
        task.exception()
