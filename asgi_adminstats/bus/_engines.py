"""The bus engines, chosen by ``Settings.broadcast_url``; drivers are imported lazily."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from broadcaster import Broadcast

from ..settings import Settings, SettingsError
from ._healing import BusStatus, HealingBackend

__all__ = [
    "BusStatus",
    "HealingBackend",
    "create_broadcast",
    "create_listener",
    "engine_of",
    "masked_url",
]

_EXTRA = {"redis": "redis", "postgresql": "postgres"}


def engine_of(url: str) -> str:
    """``memory``, ``redis`` or ``postgresql`` for a bus URL."""
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    return {"rediss": "redis", "postgres": "postgresql"}.get(scheme, scheme)


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":********@", 1)
    return parts._replace(netloc=netloc).geturl()


def create_broadcast(settings: Settings) -> tuple[Broadcast, BusStatus, HealingBackend | None]:
    """A ``Broadcast`` on our own healing backend (or broadcaster's memory backend)."""
    url = settings.broadcast_url
    engine = engine_of(url)
    status = BusStatus(engine)
    if engine == "memory":
        return Broadcast(url), status, None
    options: dict[str, Any] = {
        "status": status,
        "backoff_initial": settings.bus_backoff_initial,
        "backoff_max": settings.bus_backoff_max,
    }
    backend: HealingBackend
    try:
        if engine == "redis":
            from ._redis import RedisBackend

            backend = RedisBackend(url, **options)
        else:
            from ._postgres import PostgresBackend

            backend = PostgresBackend(
                url,
                application_name=f"{settings.channel_prefix}-bus:{settings.instance_name}"[:63],
                **options,
            )
    except ImportError as exc:
        raise SettingsError(
            f"setting 'broadcast_url' ({masked_url(url)}) needs the {engine} driver, "
            f"which is not installed ({exc.name}): pip install "
            f"'asgi-adminstats[{_EXTRA[engine]}]'",
            "broadcast_url",
        ) from None
    return Broadcast(backend=backend), status, backend


def create_listener(dsn: str, settings: Settings, *, name: str) -> HealingBackend:
    """A PostgreSQL LISTEN connection that heals, publishing nothing (no pool): its
    ``status.backend`` is ``name`` in the logs. Subscribe after ``connect``."""
    from ._postgres import PostgresBackend

    return PostgresBackend(
        dsn,
        application_name=f"{settings.channel_prefix}-{name}:{settings.instance_name}"[:63],
        publishing=False,
        status=BusStatus(name),
        backoff_initial=settings.bus_backoff_initial,
        backoff_max=settings.bus_backoff_max,
    )
