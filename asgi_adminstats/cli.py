"""The ``adminstats`` command line: ``token`` mints a local admin token, ``init-db``
installs the PostgreSQL audit trigger."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from databases import Database
from joserfc import jwt
from joserfc.jwk import OctKey

from .schema import create_default_schema, install_audit_trigger
from .settings import ENV_PREFIX, IDENTIFIER, Settings, SettingsError

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
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(args)
    return _init_db(args)


if __name__ == "__main__":
    raise SystemExit(main())
