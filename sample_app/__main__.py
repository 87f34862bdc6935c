"""``python -m sample_app``: configure from the environment, print how to log in, serve.

Without an identity provider it generates an HS256 secret (unless
``ADMINSTATS_JWT_SECRET`` gives one) and prints an admin token signed with it. With one
(``ADMINSTATS_OIDC_ISSUER``, ``_JWKS_URL``, ``_JWT_PUBLIC_KEY`` or ``_INTROSPECTION_URL``)
nothing is generated: tokens come from the provider, HS* are accepted only if a secret
is given too, and the banner says what a token must carry instead of printing one.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette

from asgi_adminstats import Settings, SettingsError, mint_token
from asgi_adminstats.auth import allowed_algorithms
from asgi_adminstats.server import run
from asgi_adminstats.settings import DEFAULT_ALGORITHMS, ENV_PREFIX

from .app import WS_PATH, create_app

__all__ = [
    "DEFAULT_DATABASE_URL",
    "PROVIDER_VARIABLES",
    "Config",
    "app_from_env",
    "default_origins",
    "load_config",
    "main",
]

DEFAULT_DATABASE_URL = "sqlite:///./adminstats-sample.db"
_STARTUP_TOKEN_TTL = 12 * 3600
_TRUE = frozenset({"1", "true", "yes", "on"})
_DIALECTS = ("sqlite", "postgresql")
#: Any of these set: tokens come from an identity provider, no secret is generated.
PROVIDER_VARIABLES = (
    "ADMINSTATS_OIDC_ISSUER",
    "ADMINSTATS_JWKS_URL",
    "ADMINSTATS_JWT_PUBLIC_KEY",
    "ADMINSTATS_INTROSPECTION_URL",
)


@dataclass(frozen=True)
class Config:
    settings: Settings
    database_url: str
    dev: bool
    generated_secret: bool


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def default_origins(host: str, port: int) -> tuple[str, ...]:
    candidates = (
        f"http://{_url_host(host)}:{port}",
        f"http://localhost:{port}",
        f"http://127.0.0.1:{port}",
    )
    return tuple(dict.fromkeys(candidates))


def load_config(
    host: str, port: int, *, dev: bool, environ: Mapping[str, str] | None = None
) -> Config:
    """Settings from the environment; raises :class:`SettingsError` naming the variable."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    dialect = urlsplit(database_url).scheme.partition("+")[0]
    if dialect == "postgres":
        raise SettingsError("DATABASE_URL: write postgresql:// (not postgres://)", "database_url")
    if dialect not in _DIALECTS:
        raise SettingsError(
            f"DATABASE_URL: the sample app supports sqlite:// and "
            f"postgresql:// URLs (got {dialect or 'no scheme'!r})",
            "database_url",
        )
    # Only fill what is unset: then a bad variable is reported under its own name.
    overrides: dict[str, Any] = {"database_url": database_url}
    provider = any(env.get(var) for var in PROVIDER_VARIABLES)
    generated = "ADMINSTATS_JWT_SECRET" not in env and not provider
    if generated:
        overrides["jwt_secret"] = secrets.token_urlsafe(32)
    if "ADMINSTATS_ALLOWED_ORIGINS" not in env:
        overrides["allowed_origins"] = default_origins(host, port)
    if dialect == "postgresql" and "ADMINSTATS_INSTALL_AUDIT_TRIGGER" not in env:
        # Rows from psql or another service reach the dashboard on commit, on any bus.
        overrides["install_audit_trigger"] = True
    try:
        settings = Settings.from_env(env, **overrides)
    except SettingsError as exc:
        name = exc.setting
        if name == "database_url":
            raise SettingsError(f"DATABASE_URL: {exc}", name) from None
        var = f"{ENV_PREFIX}{(name or '').upper()}"
        if name and var not in env:
            # A default (or a value made up here) clashes with a variable that was set:
            # say which variable fixes it, since the message cannot.
            raise SettingsError(f"{exc} (set {var} to change it)", name) from None
        raise
    dev = dev or env.get("ADMINSTATS_DEV", "").strip().lower() in _TRUE
    return Config(settings, database_url, dev, generated)


def _banner(config: Config, host: str, port: int) -> str:
    settings = config.settings
    base = f"{_url_host(host)}:{port}"
    lines = ["asgi-adminstats sample app"]
    if config.generated_secret:
        lines.append(
            "  ADMINSTATS_JWT_SECRET is not set: generated a random secret for this "
            "run (tokens stop working when the server restarts)."
        )
    lines += [
        f"  Dashboard:       http://{base}/admin",
        f"  WebSocket:       ws://{base}{WS_PATH}",
        f"  Allowed origins: {', '.join(settings.allowed_origins) or '(none)'}",
    ]
    lines += _provider_lines(settings)
    if settings.jwt_secret is not None:
        token = mint_token(
            settings.jwt_secret,
            sub="dev-admin",
            ttl=_STARTUP_TOKEN_TTL,
            issuer=settings.jwt_issuer or settings.oidc_issuer,
            audience=settings.jwt_audience,
        )
        lines += ["  Admin token (sub=dev-admin, valid 12 h):", f"    {token}"]
    if config.dev and settings.jwt_secret is not None:
        lines.append(
            '  Dev mode: the dashboard has a "Dev login" button '
            "(development only: never enable it in production)."
        )
    elif config.dev:
        lines.append('  Dev mode: no "Dev login" without ADMINSTATS_JWT_SECRET.')
    if settings.jwt_secret is not None:
        lines.append("  Sign in by pasting the token above into the dashboard's token field.")
    else:
        lines.append(
            "  No token is printed: get an admin access token from your identity provider "
            "and paste it into the dashboard's token field (or send it as "
            "'Authorization: Bearer <token>')."
        )
    return "\n".join(lines)


def _provider_lines(settings: Settings) -> list[str]:
    """Where tokens are verified, and what an admin token must carry."""
    lines = []
    if settings.oidc_issuer:
        lines.append(f"  OIDC issuer:     {settings.oidc_issuer} (keys by discovery)")
    if settings.jwks_url:
        lines.append(f"  JWKS:            {settings.jwks_url}")
    if settings.jwt_public_key:
        lines.append("  Public key:      ADMINSTATS_JWT_PUBLIC_KEY")
    if settings.introspection_url:
        lines.append(f"  Introspection:   {settings.introspection_url} (opaque tokens)")
    if len(lines) == 0:
        return lines  # the local secret only: the printed token says it all
    allowed = allowed_algorithms(settings)
    algorithms = [alg for alg in settings.jwt_algorithms or DEFAULT_ALGORITHMS if alg in allowed]
    lines.append(f"  JWT algorithms:  {', '.join(algorithms) or '(none: opaque tokens only)'}")
    rule = f"role {settings.admin_role!r} in {settings.role_claim!r} or {settings.roles_claim!r}"
    if settings.admin_scope:
        rule += f", or scope {settings.admin_scope!r}"
    lines.append(f"  Admin rule:      {rule}")
    issuer = settings.jwt_issuer or settings.oidc_issuer
    if issuer or settings.jwt_audience:
        wanted = [f"iss {issuer!r}"] if issuer else []
        wanted += [f"aud {settings.jwt_audience!r}"] if settings.jwt_audience else []
        lines.append(f"  Tokens must carry {' and '.join(wanted)}")
    return lines


def app_from_env() -> Starlette:
    """The sample app for ``uvicorn --factory sample_app.__main__:app_from_env``, e.g.
    with ``--workers 2`` (README, "Several worker processes").

    Every worker builds its own copy: the secret must come from ``ADMINSTATS_JWT_SECRET``
    (or a provider), not be generated per worker, or each would refuse the others'
    tokens. ``HOST``/``PORT`` (default 127.0.0.1:8000) give the default allowed origins;
    ``SAMPLE_SIMULATE=1`` runs the fake traffic (in every worker).
    """
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    config = load_config(host, port, dev=False)
    if config.generated_secret:
        raise SettingsError(
            "ADMINSTATS_JWT_SECRET: set it (the same in every worker) to run the sample "
            "app under uvicorn --factory, or configure an identity provider",
            "jwt_secret",
        )
    simulate = os.environ.get("SAMPLE_SIMULATE", "").strip().lower() in _TRUE
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    return create_app(
        config.settings, database_url=config.database_url, dev=config.dev, simulate=simulate
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--dev",
        action="store_true",
        help='enable the dashboard\'s "Dev login" (also ADMINSTATS_DEV=1)',
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses whose X-Forwarded-For uvicorn believes "
        "(default: none, proxy headers off; or set trusted_proxies instead)",
    )
    parser.add_argument(
        "--no-simulate",
        dest="simulate",
        action="store_false",
        help="do not generate fake player traffic",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N processes, a listening socket each; they need a shared bus "
        "(ADMINSTATS_BROADCAST_URL=redis://... or postgresql://...)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.host, args.port, dev=args.dev)
    except SettingsError as exc:
        print(f"sample_app: {exc}", file=sys.stderr)
        return 2
    if args.workers != 1:
        return _run_workers(args, config)
    try:
        app: Starlette = create_app(
            config.settings,
            database_url=config.database_url,
            dev=config.dev,
            simulate=args.simulate,
        )
    except SettingsError as exc:
        print(f"sample_app: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # SQLAlchemy imports the driver when the engine is made, e.g. asyncpg.
        print(f"sample_app: DATABASE_URL: driver not installed ({exc})", file=sys.stderr)
        return 2
    print(_banner(config, args.host, args.port), flush=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    # The recommended run: the hardened WebSocket protocol, ws_max_size following
    # max_message_bytes, proxy headers only from --forwarded-allow-ips, and a listening
    # socket whose stalled clients the kernel drops after 30 s (docs/slow-consumers.md).
    run(
        app,
        config.settings,
        host=args.host,
        port=args.port,
        forwarded_allow_ips=args.forwarded_allow_ips,
        user_timeout=30.0,
    )
    return 0


def _run_workers(args: argparse.Namespace, config: Config) -> int:
    """``--workers N``: every worker builds the app with :func:`app_from_env`, so this
    run's choices go to them through the environment (a generated secret too: one per
    worker would refuse the others' tokens)."""
    if urlsplit(config.settings.broadcast_url).scheme == "memory":
        print(
            f"sample_app: --workers {args.workers} needs a bus the processes share: set "
            "ADMINSTATS_BROADCAST_URL to redis://... or postgresql://...",
            file=sys.stderr,
        )
        return 2
    os.environ.update(HOST=args.host, PORT=str(args.port))
    os.environ["SAMPLE_SIMULATE"] = "1" if args.simulate else "0"
    if config.dev:
        os.environ["ADMINSTATS_DEV"] = "1"
    if config.generated_secret and config.settings.jwt_secret is not None:
        os.environ["ADMINSTATS_JWT_SECRET"] = config.settings.jwt_secret
    print(_banner(config, args.host, args.port), flush=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    try:
        run(
            "sample_app.__main__:app_from_env",
            config.settings,
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            forwarded_allow_ips=args.forwarded_allow_ips,
            user_timeout=30.0,
        )
    except (ValueError, RuntimeError) as exc:  # bad --workers or bus; a worker that died
        print(f"sample_app: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
