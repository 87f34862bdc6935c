"""The ``adminstats`` command line: ``token`` mints a local admin token, ``init-db``
installs the PostgreSQL audit trigger, ``tail`` prints a server's live stats and actions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from databases import Database
from joserfc import jwt
from joserfc.jwk import OctKey

from .audit import install_audit_trigger
from .db import create_default_schema
from .settings import ENV_PREFIX, IDENTIFIER, Settings, SettingsError

if TYPE_CHECKING:
    from .client import AdminStatsClient

__all__ = ["main", "mint_token"]


def mint_token(
    secret: str,
    *,
    sub: str,
    roles: Sequence[str] = ("admin",),
    ttl: float = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for local use (development, tests, scripts)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    if len(roles) == 1:
        claims["role"] = roles[0]
    elif roles:
        claims["roles"] = list(roles)
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


def _token(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"adminstats token: {exc}", file=sys.stderr)
        return 2
    if settings.jwt_secret is None:
        print(
            f"adminstats token: mints HS256 tokens only: set {ENV_PREFIX}JWT_SECRET",
            file=sys.stderr,
        )
        return 2
    print(
        mint_token(
            settings.jwt_secret,
            sub=args.sub,
            roles=args.role or ["admin"],
            ttl=args.ttl,
            issuer=args.issuer or settings.jwt_issuer,
            audience=args.audience or settings.jwt_audience,
        )
    )
    return 0


def _init_db(args: argparse.Namespace) -> int:
    url = (
        args.database_url
        or os.environ.get(f"{ENV_PREFIX}DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        print(
            f"adminstats init-db: give --database-url or set {ENV_PREFIX}DATABASE_URL",
            file=sys.stderr,
        )
        return 2
    for name, value in (("--prefix", args.prefix), ("--table", args.table)):
        if not IDENTIFIER.fullmatch(value):
            print(
                f"adminstats init-db: {name} must be a lower-case SQL identifier", file=sys.stderr
            )
            return 2
    try:
        done = asyncio.run(_install(url, args))
    except Exception as exc:
        print(f"adminstats init-db: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(done))
    return 0


async def _install(url: str, args: argparse.Namespace) -> list[str]:
    database = Database(url)
    await database.connect()
    done = []
    try:
        if args.default_schema:
            await create_default_schema(database)
            done.append("default schema: ready")
        await install_audit_trigger(database, prefix=args.prefix, table=args.table)
        done.append(
            f"audit trigger {args.prefix}_audit_notify on {args.table}: installed "
            f"(NOTIFY {args.prefix}_audit)"
        )
    finally:
        await database.disconnect()
    return done


#: Exit status of ``tail`` when the server refuses the token (4401/4403, or HTTP 401).
_EXIT_REFUSED = 3


def _tail(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(f"{ENV_PREFIX}TOKEN")
    if not token:
        print(f"adminstats tail: give --token or set {ENV_PREFIX}TOKEN", file=sys.stderr)
        return 2
    from .client import AdminStatsClient, ConnectionRejected

    try:
        client = AdminStatsClient(
            args.url,
            token=token,
            origin=args.origin,
            max_reconnect_attempts=args.max_reconnect_attempts,
        )
    except ImportError as exc:  # websockets is needed by `tail` only
        print(f"adminstats tail: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"adminstats tail: {exc}", file=sys.stderr)
        return 2
    # Reconnect notices go to stderr, so stdout stays the view (or pure JSON lines).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("adminstats tail: %(message)s"))
    client_log = logging.getLogger("asgi_adminstats.client")
    client_log.addHandler(handler)
    client_log.setLevel(logging.INFO)
    client_log.propagate = False
    try:
        asyncio.run(_follow(client, as_json=args.json))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and none at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConnectionRejected as exc:
        print(f"adminstats tail: refused: {exc}", file=sys.stderr)
        refused_token = exc.code in (4401, 4403) or exc.status == 401
        return _EXIT_REFUSED if refused_token else 1
    except Exception as exc:
        # One line, no traceback; the token is masked in case an error quoted a header.
        message = f"{type(exc).__name__}: {exc}".replace(token, "***")
        print(f"adminstats tail: {message}", file=sys.stderr)
        return 1
    finally:
        client_log.removeHandler(handler)
    return 0


async def _follow(client: AdminStatsClient, *, as_json: bool) -> None:
    async with client:
        async for message in client:
            if as_json:
                # ensure_ascii: terminal control characters in names stay escaped.
                print(json.dumps(message, separators=(",", ":")), flush=True)
                continue
            line = _human_line(message)
            if line is not None:
                print(line, flush=True)
                continue
            note = _human_note(message)
            if note is not None:
                print(f"adminstats tail: {note}", file=sys.stderr, flush=True)


def _human_line(message: Mapping[str, Any]) -> str | None:
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
            f"on {_text(data.get('targetType'))} #{_text(data.get('id'))}{replayed}"
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


def _human_note(message: Mapping[str, Any]) -> str | None:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adminstats", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser(
        "token", help=f"mint an admin token from {ENV_PREFIX}JWT_SECRET (local use)"
    )
    token.add_argument("--sub", required=True, help="subject (the admin's name)")
    token.add_argument(
        "--role", action="append", help="role claim (repeat for a roles list; default: admin)"
    )
    token.add_argument("--ttl", type=float, default=3600, help="lifetime in seconds")
    token.add_argument("--issuer", help=f"iss claim (default: {ENV_PREFIX}JWT_ISSUER)")
    token.add_argument("--audience", help=f"aud claim (default: {ENV_PREFIX}JWT_AUDIENCE)")
    init_db = commands.add_parser(
        "init-db",
        help="install the PostgreSQL audit trigger (idempotent) so rows inserted by any "
        "writer reach dashboards at once",
    )
    init_db.add_argument("--database-url", help=f"default: {ENV_PREFIX}DATABASE_URL, DATABASE_URL")
    init_db.add_argument(
        "--prefix",
        default=os.environ.get(f"{ENV_PREFIX}CHANNEL_PREFIX", "adminstats"),
        help="Settings.channel_prefix (default: adminstats)",
    )
    init_db.add_argument(
        "--table",
        default=os.environ.get(f"{ENV_PREFIX}AUDIT_TABLE", "audit_log"),
        help="Settings.audit_table (default: audit_log)",
    )
    init_db.add_argument(
        "--default-schema",
        action="store_true",
        help="also create the documented default tables if missing",
    )
    tail = commands.add_parser(
        "tail",
        help="print a server's live stats and audit actions (reconnects; Ctrl-C stops)",
        description="Exit status: 0 on Ctrl-C, 3 when the server refuses the token "
        "(4401/4403), 1 on other fatal errors, 2 on usage errors.",
    )
    tail.add_argument("url", help="the endpoint, e.g. ws://localhost:8000/admin/ws")
    tail.add_argument(
        "--token",
        help=f"admin token (prefer {ENV_PREFIX}TOKEN: arguments are visible to other users)",
    )
    tail.add_argument("--json", action="store_true", help="one raw server message per line")
    tail.add_argument("--origin", help="Origin header to send (if the server requires one)")
    tail.add_argument(
        "--max-reconnect-attempts",
        type=int,
        metavar="N",
        help="give up after N failed reconnection attempts in a row (default: never)",
    )
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(args)
    if args.command == "tail":
        return _tail(args)
    return _init_db(args)


if __name__ == "__main__":
    raise SystemExit(main())
