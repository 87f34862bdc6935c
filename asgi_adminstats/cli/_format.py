"""What ``adminstats tail`` prints for a human: one line per stats update or audit
action, a note for the other messages, every server value made safe for a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["human_line", "human_note"]


def human_line(message: Mapping[str, Any]) -> str | None:
    """The stdout line for a ``stats_update`` or an ``audit_action``."""
    kind = message.get("type")
    data = message.get("data")
    if not isinstance(data, Mapping):
        return None
    if kind == "stats_update":
        return _stats_line(message.get("timestamp"), data)
    if kind == "audit_action":
        replayed = " (replayed)" if data.get("replayed") else ""
        return (
            f"{_clock(data.get('timestamp') or message.get('timestamp'))} | "
            f"{_text(data.get('action'))} by {_text(data.get('admin'))} "
            # The id is the audit row's, not the target's (which never leaves the server).
            f"on {_text(data.get('targetType'))} (audit #{_text(data.get('id'))}){replayed}"
        )
    return None


def _stats_line(timestamp: object, data: Mapping[str, Any]) -> str:
    online = _part(data, "online")
    totals = _part(data, "totals")
    system = _part(data, "system")
    database = _part(system, "database")
    memory = _part(system, "memory")
    meta = _part(data, "meta")
    fields = [
        _clock(timestamp),
        f"online {_text(online.get('users'))} users, {_text(online.get('players'))} players",
        f"{_text(online.get('connections'))} connections",
        ", ".join(f"{_text(v)} {_text(k)}" for k, v in totals.items()) or "totals ?",
        f"db {_text(database.get('status'))} {_text(database.get('latency'))} ms",
        f"mem {_text(memory.get('used'))}/{_text(memory.get('total'))} MiB",
        f"up {_duration(system.get('uptime'))}",
        _text(meta.get("instance")),
    ]
    flags = [name for name in ("stale", "local") if meta.get(name)]
    return " | ".join(fields) + "".join(f" [{flag}]" for flag in flags)


def human_note(message: Mapping[str, Any]) -> str | None:
    """A stderr note for the other messages worth a human's attention."""
    kind = message.get("type")
    if kind == "connected":
        user = message.get("user")
        sub = user.get("sub") if isinstance(user, Mapping) else None
        return f"connected as {_text(sub)} (connection {_text(message.get('connectionId'))})"
    if kind == "error":
        return f"server error {_text(message.get('code'))}: {_text(message.get('message'))}"
    if kind == "token_expiring":
        return f"the token expires at {_text(message.get('expiresAt'))}; tail stops then"
    return None


def _part(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    # A failing source leaves its part null (PROTOCOL.md): show "?" rather than fail.
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: object, limit: int = 60) -> str:
    """A value fit for a terminal: "?" if missing, control characters escaped, bounded."""
    if value is None:
        return "?"
    text = str(value)
    # Names come from the database: no escape sequences reach the terminal.
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clock(timestamp: object) -> str:
    """Local wall-clock time of an ISO 8601 timestamp."""
    try:
        moment = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "--:--:--"
    return moment.astimezone().strftime("%H:%M:%S")


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
