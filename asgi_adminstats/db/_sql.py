"""Portable SQL helpers: typed parameters, naive-UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.sql.elements import TextClause

__all__ = ["Statement", "as_utc", "clause", "statement", "utcnow_naive"]

#: What the seam runs: SQL text with ``:name`` parameters, or one bound by ``statement``.
Statement: TypeAlias = str | TextClause


def statement(sql: str, **values: Any) -> TextClause:
    """``sql`` with its values bound; datetimes typed so every driver stores them alike."""
    params = [
        bindparam(name, value, type_=DateTime())
        if isinstance(value, datetime)
        else bindparam(name, value)
        for name, value in values.items()
    ]
    return text(sql).bindparams(*params)


def clause(sql: Statement) -> TextClause:
    """Plain text as a statement (an engine runs no bare strings; ``databases`` did)."""
    return text(sql) if isinstance(sql, str) else sql


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
