"""The ``adminstats`` commands: ``token`` mints a local admin token, ``init-db``
installs the PostgreSQL audit trigger, ``tail`` prints a server's live stats and actions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from joserfc import jwt
from joserfc.jwk import OctKey

from ..audit import install_audit_trigger
from ..db import create_default_schema, is_postgres, open_database
from ..settings import ENV_PREFIX, IDENTIFIER, Settings, SettingsError
from ._format import human_line, human_note

if TYPE_CHECKING:
    from ..client import AdminStatsClient

__all__ = ["mint_token"]


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
    database = open_database(url)  # an engine owned for the command (asyncpg, aiosqlite)
    await database.connect()
    done = []
    try:
        if args.default_schema:
            await create_default_schema(database)
            done.append("default schema: ready")
            if not is_postgres(database):  # the tables were asked for: not a failure
                done.append(
                    f"audit trigger: PostgreSQL only, none on {database.dialect}; the "
                    "producer polls the audit table every audit_watch_interval instead"
                )
                return done
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
    from ..client import AdminStatsClient, ConnectionRejected

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
            line = human_line(message)
            if line is not None:
                print(line, flush=True)
                continue
            note = human_note(message)
            if note is not None:
                print(f"adminstats tail: {note}", file=sys.stderr, flush=True)
