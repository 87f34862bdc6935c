"""The component's loggers, with every argument escaped before it is formatted.

A log line is only as trustworthy as its fields: a ``sub`` holding "\\n" would write a
second, forged line; a NUL, an ANSI escape or a bidi override rewrites what a terminal
shows; a lone surrogate makes a UTF-8 log handler fail the whole record. Format strings
are ours; arguments may come from a client (a token's claims, a forwarded header), so
each string argument is escaped and bounded on every logger the component creates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["EscapeArgs", "escape", "get_logger"]

#: Longest escaped argument; a 255-character ``sub`` (OIDC's limit) still fits whole.
MAX_FIELD = 512
_ELLIPSIS = "\u2026"


def escape(text: str, limit: int = MAX_FIELD) -> str:
    """``text`` on one line, printable, at most ``limit`` characters (then an ellipsis).

    Backslashes are doubled, so an escape in the log is never something a client typed.
    """
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text  # the common case: nothing to do
    out: list[str] = []
    used = 0
    for char in text:
        shown = _escaped(char)
        if used + len(shown) > limit:
            out.append(_ELLIPSIS)
            break
        out.append(shown)
        used += len(shown)
    return "".join(out)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable() or char == " ":
        return char
    # Controls, separators (U+2028 ...), format characters (bidi overrides), surrogates.
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_arg(value: object) -> object:
    return escape(value) if isinstance(value, str) else value


class EscapeArgs(logging.Filter):
    """Escapes every ``str`` argument of a record (numbers keep their ``%d``/``%.1f``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_escape_arg(arg) for arg in args)
        elif isinstance(args, Mapping):
            escaped: dict[str, Any] = {key: _escape_arg(value) for key, value in args.items()}
            record.args = escaped
        return True


_FILTER = EscapeArgs()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`EscapeArgs` attached (once).

    A logger's filters see only its own records, not those propagated from children:
    so every logger of the component is made here, not just the package's root.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, EscapeArgs) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger
