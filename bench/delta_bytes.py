"""Delta updates on the sample app's real snapshots: bytes per tick and send CPU.

    python bench/delta_bytes.py [--ticks 30] [--interval 0.5] [--audit-rates 0.2 1.0] [--clients 5]
    python bench/delta_bytes.py --smoke     # a few seconds: behaviour only, no numbers kept

The sample app (its collectors, its demo data, its simulated player traffic) under
uvicorn, with audit actions recorded at each of ``--audit-rates`` per second in turn
(each change of ``recentActions`` resends that array whole, as RFC 7386 does). Four kinds of
WebSocket client (websockets, stats only) are connected at once, ``--clients`` of each:
full snapshots or deltas (``adminstats.delta``), each with permessage-deflate off
(``raw``) or on (``deflate``, websockets' defaults, context takeover). Per tick:

- the frame's JSON text (UTF-8 bytes) and the bytes the client read off its socket
  (frame headers and, with deflate, the compressed payload);
- that every delta rebuilt exactly the snapshot a full client got that tick;
- CPU per delivery: the server's send of each stats frame (``StarletteTransport.send_text``:
  the ASGI send, uvicorn's framing and compression, the socket write), full vs delta,
  with deflate; and the once-per-tick cost of the patch (``StatsTick.delta``).

Results: bench/results/delta.json and .md (not with --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for support/ and sample_app/

from report import measured_on  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from asgi_adminstats import protocol  # noqa: E402
from asgi_adminstats.delivery import StatsTick  # noqa: E402
from asgi_adminstats.session import StarletteTransport  # noqa: E402
from sample_app.app import create_app  # noqa: E402

from support.loopback import client, make_settings, recv, serve, token  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KINDS = ("full/raw", "full/deflate", "delta/raw", "delta/deflate")
DELTA = [Subprotocol("adminstats.v1"), Subprotocol("adminstats.delta")]


class SendTimes:
    """The server's send of each stats frame, by kind of client, and the patch per tick."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[float]] = {}
        self.patch: list[float] = []

    @contextlib.contextmanager
    def installed(self) -> Any:
        # Every frame after `connected` goes through the transport's send_text (the hub's
        # fan-out awaits it, the writer's drain too): time the server's send it returns.
        send_text, compute = StarletteTransport.send_text, StatsTick._compute_delta

        async def timed(kind: str, sent: Awaitable[None]) -> None:
            started = time.perf_counter()
            await sent
            self.by_kind.setdefault(kind, []).append(time.perf_counter() - started)

        def timed_send(transport: StarletteTransport, text: str) -> Awaitable[None]:
            sent = send_text(transport, text)
            if not text.startswith('{"type":"stats_'):
                return sent
            return timed(client_kind(transport.scope), sent)

        def timed_patch(tick: StatsTick) -> str | None:
            started = time.perf_counter()
            try:
                return compute(tick)
            finally:
                self.patch.append(time.perf_counter() - started)

        StarletteTransport.send_text = timed_send  # type: ignore[method-assign,assignment]
        StatsTick._compute_delta = timed_patch  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            StarletteTransport.send_text = send_text  # type: ignore[method-assign]
            StatsTick._compute_delta = compute  # type: ignore[method-assign]


def client_kind(scope: Any) -> str:
    """One of KINDS, from what the client offered in its handshake."""
    deltas = "adminstats.delta" in scope.get("subprotocols", ())
    extensions = dict(scope["headers"]).get(b"sec-websocket-extensions", b"")
    deflate = b"permessage-deflate" in extensions
    return f"{'delta' if deltas else 'full'}/{'deflate' if deflate else 'raw'}"


class Reader:
    """One client: the snapshots it holds (deltas applied), the bytes per frame."""

    def __init__(self, kind: str, ws: ClientConnection, session: str) -> None:
        self.kind, self.ws, self.session = kind, ws, session
        self.wire = 0
        self.frames: list[dict[str, Any]] = []  # per tick: type, text bytes, wire bytes
        self.snapshots: list[dict[str, Any]] = []
        self._held: Any = None
        received = ws.data_received

        def counted(data: bytes) -> None:
            self.wire += len(data)
            received(data)

        ws.data_received = counted  # type: ignore[method-assign]

    def take(self, message: dict[str, Any]) -> None:
        if message["type"] == "stats_delta":
            assert message["base"] == self._held[0], "a delta for another base"
            self._held = (message["seq"], protocol.merge_patch(self._held[1], message["data"]))
        else:
            assert message["type"] == "stats_update", message["type"]
            self._held = (message.get("seq"), message["data"])

    async def read(self, ticks: int) -> None:
        for _ in range(ticks):
            before = self.wire
            raw = await asyncio.wait_for(self.ws.recv(), 30)
            message = json.loads(raw)
            size = len(raw.encode()) if isinstance(raw, str) else len(raw)
            self.take(message)
            self.frames.append({"type": message["type"], "text": size, "wire": self.wire - before})
            self.snapshots.append(self._held[1])


async def open_reader(url: str, kind: str, stack: contextlib.AsyncExitStack) -> Reader:
    deltas, deflate = kind.startswith("delta"), kind.endswith("deflate")
    options: dict[str, Any] = {"compression": "deflate" if deflate else None}
    if deltas:
        options["subprotocols"] = DELTA
    ws = await stack.enter_async_context(client(url, tok=token(), **options))
    hello = await recv(ws)
    assert hello.get("deltas", False) is deltas
    await ws.send(json.dumps({"type": "unsubscribe", "subscriptions": ["notifications"]}))
    reader = Reader(kind, ws, hello["connectionId"])
    return reader


async def first_stats(reader: Reader) -> None:
    """Up to the first snapshot (and the `subscribed` reply): counting starts after."""
    seen: set[str] = set()
    while seen != {"stats_update", "subscribed"}:
        message = await recv(reader.ws, 30)
        if message["type"] in ("stats_update", "stats_delta"):
            reader.take(message)
            message["type"] = "stats_update"
        seen.add(message["type"])
    reader.wire = 0


async def record_actions(app: Any, rate: float) -> None:
    stats = app.state.stats
    n = 0
    while rate > 0:
        await asyncio.sleep(1 / rate)
        n += 1
        await stats.record_action("BAN_PLAYER" if n % 2 else "UNBAN_PLAYER", "bench", "PLAYER", n)


async def run(args: argparse.Namespace, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp), stats_interval=args.interval, database_url=f"sqlite:///{tmp}/sample.db"
        )
        app = create_app(settings, database_url=settings.database_url)
        times = SendTimes()
        async with contextlib.AsyncExitStack() as stack:
            stack.enter_context(times.installed())
            addr = await stack.enter_async_context(serve(app))
            url = f"ws://{addr}/admin/ws"
            readers = [
                await open_reader(url, kind, stack) for kind in KINDS for _ in range(args.clients)
            ]
            await asyncio.gather(*(first_stats(r) for r in readers))
            times.by_kind.clear()
            times.patch.clear()
            writer = asyncio.create_task(record_actions(app, rate))
            try:
                await asyncio.gather(*(r.read(args.ticks) for r in readers))
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
    return summarize(args, rate, readers, times)


def summarize(
    args: argparse.Namespace, rate: float, readers: list[Reader], times: SendTimes
) -> dict[str, Any]:
    reference = next(r for r in readers if r.kind == "full/raw").snapshots
    mismatches = sum(
        not protocol.same(mine, theirs)
        for r in readers
        for mine, theirs in zip(r.snapshots, reference, strict=True)
    )
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        group = [r for r in readers if r.kind == kind]
        frames = [f for r in group for f in r.frames]
        sends = times.by_kind.get(kind, [])
        kinds[kind] = {
            "text_bytes_per_tick": statistics.fmean(f["text"] for f in frames),
            "wire_bytes_per_tick": statistics.fmean(f["wire"] for f in frames),
            "full_frames": sum(f["type"] == "stats_update" for f in frames),
            "delta_frames": sum(f["type"] == "stats_delta" for f in frames),
            "send_us_median": statistics.median(sends) * 1e6 if sends else None,
            "send_us_mean": statistics.fmean(sends) * 1e6 if sends else None,
            "sends_timed": len(sends),
        }

    def saved(measure: str, mode: str) -> float:
        full: float = kinds[f"full/{mode}"][measure]
        delta: float = kinds[f"delta/{mode}"][measure]
        return round(100 * (1 - delta / full), 1)

    # Medians: a garbage collection or a page fault in one send says nothing of the rest.
    full_cpu = kinds["full/deflate"]["send_us_median"]
    delta_cpu = kinds["delta/deflate"]["send_us_median"]
    return {
        "ticks": args.ticks,
        "stats_interval": args.interval,
        "audit_rate_per_s": rate,
        "clients_per_kind": args.clients,
        "kinds": kinds,
        "saved_percent": {
            "text": saved("text_bytes_per_tick", "raw"),
            "wire_raw": saved("wire_bytes_per_tick", "raw"),
            "wire_deflate": saved("wire_bytes_per_tick", "deflate"),
        },
        "cpu_ratio_delta_vs_full_deflate": (
            round(delta_cpu / full_cpu, 3) if full_cpu and delta_cpu else None
        ),
        "patch_us_per_tick_median": statistics.median(times.patch) * 1e6 if times.patch else None,
        "snapshot_mismatches": mismatches,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## {result['audit_rate_per_s']} audit actions per second",
        "",
        f"The sample app (collectors, demo data, simulated traffic), {result['ticks']} ticks "
        f"every {result['stats_interval']} s, {result['audit_rate_per_s']} audit actions/s, "
        f"{result['clients_per_kind']} clients of each kind connected at once.",
        "",
        "| client | JSON text B/tick | on the wire B/tick | full frames | delta frames "
        "| send µs/frame (median) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, row in result["kinds"].items():
        cpu = "-" if row["send_us_median"] is None else f"{row['send_us_median']:.1f}"
        lines.append(
            f"| {kind} | {row['text_bytes_per_tick']:.0f} | {row['wire_bytes_per_tick']:.0f} "
            f"| {row['full_frames']} | {row['delta_frames']} | {cpu} |"
        )
    saved = result["saved_percent"]
    lines += [
        "",
        f"- Saved by deltas: {saved['text']} % of the JSON text, {saved['wire_raw']} % on the "
        f"wire without compression, {saved['wire_deflate']} % on the wire with permessage-deflate.",
        "- CPU per delivery with deflate, delta / full: "
        f"{result['cpu_ratio_delta_vs_full_deflate']} (the server's synchronous send: ASGI "
        "send, framing, compression, socket write).",
        f"- The patch, once per tick for all clients: {result['patch_us_per_tick_median']:.0f} µs "
        "(median).",
        f"- Snapshots rebuilt from deltas that differ from the full client's: "
        f"{result['snapshot_mismatches']}.",
        "- With permessage-deflate (context takeover, websockets' and uvicorn's default) a "
        "full snapshot already compresses against the previous one still in the 32 KiB "
        "window: what is left on the wire is what changed, as in a delta.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--audit-rates", type=float, nargs="+", default=[0.2, 1.0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.ticks, args.interval, args.clients, args.audit_rates = 4, 0.3, 1, [3.0]
    results = []
    text = "# Delta updates: bytes per tick and send CPU (bench/delta_bytes.py)\n\n"
    text += f"Measured on {measured_on()}\n\n"
    for rate in args.audit_rates:
        result = asyncio.run(run(args, rate))
        assert result["snapshot_mismatches"] == 0, "a delta did not rebuild the snapshot"
        assert result["kinds"]["delta/raw"]["delta_frames"] > 0, "no delta was sent"
        untimed = [kind for kind, row in result["kinds"].items() if not row["sends_timed"]]
        assert not untimed, f"no send timed for {untimed}: the hook missed the server's send"
        results.append(result)
        text += markdown(result) + "\n"
        print(markdown(result), flush=True)
    if not args.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "delta.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "delta.md").write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    main()
