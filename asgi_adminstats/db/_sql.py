"""Portable SQL helpers for ``databases``: typed parameters, naive-UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from databases import Database
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.sql.elements import TextClause

__all__ = ["as_utc", "is_postgres", "statement", "utcnow_naive"]


def statement(sql: str, **values: Any) -> TextClause:
    """``sql`` with its values bound; datetimes typed so every driver stores them alike."""
    params = [
        bindparam(name, value, type_=DateTime())
        if isinstance(value, datetime)
        else bindparam(name, value)
        for name, value in values.items()
    ]
    return text(sql).bindparams(*params)


def utcnow_naive() -> datetime:
    """Timestamps are stored as naive UTC (``TIMESTAMP`` without time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc(value: Any) -> datetime | None:
    """A database timestamp (datetime or SQLite text) as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_postgres(database: Database) -> bool:
    """``postgresql://`` and ``postgres://`` both reach PostgreSQL through ``databases``."""
    return database.url.dialect in ("postgresql", "postgres")
