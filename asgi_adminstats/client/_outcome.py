"""How one connection (or attempt) ended, and what the client does about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..protocol import AUTH_SERVER_UNAVAILABLE, CloseCode

__all__ = ["Ended", "verdict"]


@dataclass(frozen=True)
class Ended:
    """How one connection (or attempt) ended."""

    description: str  # for logs and errors; never contains the token
    code: int | None = None  # close code
    reason: str = ""
    status: int | None = None  # HTTP status of a refused upgrade
    retry_after: float = 0.0
    connected: bool = False  # the server had sent ``connected``


def verdict(ended: Ended) -> Literal["auth", "fatal", "retry"]:
    """PROTOCOL.md section 4: 4401/4403 do not retry with the same token; anything else
    (1013, 4429, 4008, 1001, 1006, 1011, 1012, network errors) backs off and retries."""
    if ended.code is not None:
        if ended.code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
            return "retry" if ended.reason.startswith(AUTH_SERVER_UNAVAILABLE) else "auth"
        return "retry"
    if ended.status is not None:
        if ended.status == 401:  # a proxy in front that checks the token
            return "auth"
        if ended.status in (408, 425, 429) or ended.status >= 500:
            return "retry"
        return "fatal"  # 403 forbidden origin, 404 wrong path, 426: a configuration error
    return "retry"
