"""The frames and the websockets side: decoding, encoding, the fields read from
messages and refusals, the redacted wire log, and the lazy need for ``websockets``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..telemetry import get_logger

__all__ = [
    "RedactAuthorization",
    "decode",
    "encode",
    "excerpt",
    "recent_actions",
    "require_websockets",
    "retry_after",
    "wire_logger",
]

logger = get_logger("asgi_adminstats.client")

# The `client` extra, so the install brings the versions the client is tested with.
_MISSING_WEBSOCKETS = (
    "AdminStatsClient needs the 'websockets' package: pip install 'asgi-adminstats[client]'"
)


class RedactAuthorization(logging.Filter):
    """websockets logs every handshake header at DEBUG: never the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "[redacted]")
        return True


# The wire log of our connections (websockets' own, under our name), with the filter.
wire_logger = get_logger("asgi_adminstats.client.websockets")
wire_logger.addFilter(RedactAuthorization())


def require_websockets() -> None:
    try:
        import websockets.asyncio.client  # noqa: F401
    except ImportError as exc:
        raise ImportError(_MISSING_WEBSOCKETS) from exc


def decode(raw: str | bytes) -> dict[str, Any] | None:
    """A server message, or ``None`` for a frame that is not a JSON object."""
    if isinstance(raw, bytes):
        logger.debug("ignored a binary frame")
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        logger.debug("ignored a frame that is not JSON")
        return None
    return message if isinstance(message, dict) else None


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def recent_actions(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = message.get("data")
    activity = data.get("activity") if isinstance(data, Mapping) else None
    actions = activity.get("recentActions") if isinstance(activity, Mapping) else None
    if not isinstance(actions, list):
        return []
    return [action for action in actions if isinstance(action, Mapping)]


def retry_after(value: str | None) -> float:
    """Retry-After in seconds (the server sends seconds; dates are not worth parsing)."""
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def excerpt(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"
