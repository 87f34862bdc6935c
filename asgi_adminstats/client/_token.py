"""The bearer token: checked before it goes into a header, refreshed from ``get_token``."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable

__all__ = ["Token", "TokenSource", "check_token"]

#: Returns a fresh token; a plain function runs in a worker thread (it may block).
TokenSource = Callable[[], str | Awaitable[str]]

# RFC 6750 b64token: anything else cannot go into the header as is.
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def check_token(token: object) -> str:
    if not isinstance(token, str) or not _BEARER.fullmatch(token):
        # Never echo the value: it may be a token with a stray newline.
        raise ValueError("the token must be a non-empty string of Bearer token characters")
    return token


class Token:
    """The token the next connection presents (``None``: ask ``source`` first)."""

    def __init__(self, token: str | None, source: TokenSource | None) -> None:
        self.value = None if token is None else check_token(token)
        self.source = source

    async def fetch(self) -> str:
        """A fresh token from ``source`` (the caller decides whether to keep it)."""
        get = self.source
        if get is None:
            raise RuntimeError("no get_token")
        result: str | Awaitable[str]
        if inspect.iscoroutinefunction(get):
            result = await get()
        else:
            result = await asyncio.to_thread(get)  # it may block: keep it off the loop
        if inspect.isawaitable(result):
            result = await result
        return check_token(result)
