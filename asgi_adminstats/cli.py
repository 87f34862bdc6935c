"""The ``adminstats`` command line: ``adminstats token`` mints a local admin token."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from joserfc import jwt
from joserfc.jwk import OctKey

from .settings import ENV_PREFIX, Settings, SettingsError

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
    args = parser.parse_args(argv)
    if args.command == "token":
        return _token(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
