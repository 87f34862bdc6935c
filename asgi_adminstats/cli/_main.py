"""The ``adminstats`` command line: ``token`` mints a local admin token, ``init-db``
installs the PostgreSQL audit trigger, ``tail`` prints a server's live stats and actions."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..settings import ENV_PREFIX
from ._commands import _init_db, _tail, _token

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    # This module's docstring is the --help description.
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
