"""The component's own Python per delivery, against the seed's loop, in one process.

    python bench/delivery_path.py [--n 2000] [--publishes 5] [--reps 40] [--smoke]

Both hand the same text to N connections whose ``send`` is the same stand-in for the
server's: a wrapper coroutine like Starlette's exception middleware around one like
uvicorn's (it awaits an ``Event.wait()`` that is set, as uvicorn's does). No sockets: what
is left is exactly what each design adds per delivery on top of the server's own work.

- ``adminstats``: the real ``Hub`` and a real ``Writer`` per connection (its outbox,
  the fan-out coroutine per slice, the tally), at several ``fanout_slice`` values.
- ``seed``: Starlette ``WebSocket`` objects and the seed's
  ``for ws in clients: await ws.send_text(text)``.

CPU time per delivery (``time.process_time``, pinned to CPU 1), the fastest of the
repetitions (on a shared machine another tenant's work only ever adds time: medians of
5 moved by up to 60 % between runs, the fastest of 40 by about 3 %), the median beside
it, and the ratio adminstats / seed of the fastest. The full benchmark (bench/fanout.py)
measures the whole server; this isolates the part the component controls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from servers import pin
from starlette.websockets import WebSocket, WebSocketState

from asgi_adminstats.delivery import Hub, Writer
from asgi_adminstats.telemetry import Tally

TEXT = '{"type":"stats_update","data":{"n":1}}'


class _Writable:
    """uvicorn's ``writable`` event, set: ``wait()`` returns at once."""

    async def wait(self) -> bool:
        return True


_WRITABLE = _Writable()
_SENT = [0]


async def _server_send(message: MutableMapping[str, Any]) -> None:
    await _WRITABLE.wait()
    if message["type"] == "websocket.send" and message.get("text") is not None:
        _SENT[0] += 1


async def send(message: MutableMapping[str, Any]) -> None:
    # Starlette's ExceptionMiddleware wraps the server's send in a coroutine of its own.
    await _server_send(message)


class _Sink:
    __slots__ = ()

    def send_text(self, text: str) -> Any:
        return send({"type": "websocket.send", "text": text})


class _Member:
    __slots__ = ("__weakref__", "outbox", "sub", "subscriptions", "writer")

    def __init__(self, tally: Tally) -> None:
        self.writer = Writer(_Sink(), 100, tally=tally, name="bench", gone=(OSError,))
        self.writer.start()
        self.outbox = self.writer.outbox
        self.subscriptions = frozenset(("stats", "notifications"))
        self.sub = "bench-admin"


async def adminstats(n: int, publishes: int, slice_size: int) -> float:
    done = asyncio.Event()
    tally = Tally()
    hub = Hub(slice_size=slice_size, observe=lambda channel, s: done.set(), tally=tally)
    for _ in range(n):
        hub.add(_Member(tally))

    async def publish() -> None:
        done.clear()
        hub.publish_stats(TEXT)
        await asyncio.wait_for(done.wait(), 30)  # the hub's own "fan-out completed"

    await publish()  # first-use costs stay out
    started = time.process_time()
    for _ in range(publishes):
        await publish()
    return (time.process_time() - started) / (n * publishes) * 1e9


async def seed(n: int, publishes: int) -> float:
    async def receive() -> dict[str, Any]:
        raise RuntimeError("not read here")

    clients: set[WebSocket] = set()
    for _ in range(n):
        ws = WebSocket({"type": "websocket", "path": "/", "headers": []}, receive, send)
        ws.application_state = ws.client_state = WebSocketState.CONNECTED
        clients.add(ws)

    async def publish() -> None:
        for client in list(clients):
            if client.application_state == WebSocketState.CONNECTED:
                await client.send_text(TEXT)

    await publish()
    started = time.process_time()
    for _ in range(publishes):
        await publish()
    return (time.process_time() - started) / (n * publishes) * 1e9


def _fastest(values: list[float]) -> float:
    return min(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--publishes", type=int, default=5)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="small and short")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.publishes, args.reps = 200, 3, 1
    pin(1)  # one core, as the fan-out's load generator: a move between cores costs too
    slices = (16, 64, 256)
    found: dict[str, list[float]] = {"seed": []}
    found.update({f"adminstats/{size}": [] for size in slices})
    for _ in range(args.reps):  # interleaved: the machine's noise spreads over all
        found["seed"].append(asyncio.run(seed(args.n, args.publishes)))
        for size in slices:
            ns = asyncio.run(adminstats(args.n, args.publishes, size))
            found[f"adminstats/{size}"].append(ns)
    base = _fastest(found["seed"])
    print(f"N={args.n}, {args.publishes} publishes, {args.reps} repetitions")
    print("| what | ns per delivery, fastest (median) | / seed |\n| --- | --- | --- |")
    for name, values in found.items():
        value = _fastest(values)
        label = name.replace("adminstats/", "adminstats, fanout_slice ")
        print(f"| {label} | {value:.0f} ({statistics.median(values):.0f}) | {value / base:.2f} |")
    if _SENT[0] == 0:
        raise SystemExit("nothing was sent")


if __name__ == "__main__":
    main()
