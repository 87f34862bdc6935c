"""What the stalled-reader benchmark's driver and servers share: names, a clock, a run."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ORIGIN",
    "ROOT",
    "SELF",
    "SERVERS",
    "SLOW_SEND",
    "UVICORN_WS",
    "Run",
    "now",
]


ROOT = Path(__file__).resolve().parents[2]
SELF = ROOT / "bench" / "stalled_reader.py"  # the driver, and the servers' entry point
SERVERS = ("uvicorn-websockets", "uvicorn-sansio", "uvicorn-wsproto", "hypercorn")
UVICORN_WS = {
    "uvicorn-websockets": "websockets",
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-wsproto": "wsproto",
}
ORIGIN = "http://dashboard.example.com"  # support/loopback.py ORIGIN
SLOW_SEND = 0.05  # a send longer than this "blocked"


def now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: one clock for the driver and the servers


@dataclass
class Run:
    kind: str  # bare/close, bare/hold+ping1, component, ...
    server: str
    spec: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    tcp: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    watched: dict[str, int] = field(default_factory=dict)  # client name -> client port
    _flags: dict[str, asyncio.Event] = field(default_factory=dict)

    def flag(self, ev: str) -> asyncio.Event:
        return self._flags.setdefault(ev, asyncio.Event())

    def first(self, ev: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["ev"] == ev), None)

    def samples(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ev"] == "sample"]
