"""The host's database: one seam over a SQLAlchemy ``AsyncEngine`` or a
``databases.Database``, the queries run through it, the documented default schema, and
the SQL helpers (text statements with typed parameters, naive-UTC timestamps)."""

from ._queries import Queries
from ._schema import DEFAULT_SCHEMA, create_default_schema
from ._seam import HostDatabase, SqlDatabase, async_url, is_postgres, open_database
from ._sql import Statement, as_utc, statement, utcnow_naive

__all__ = [
    "DEFAULT_SCHEMA",
    "HostDatabase",
    "Queries",
    "SqlDatabase",
    "Statement",
    "as_utc",
    "async_url",
    "create_default_schema",
    "is_postgres",
    "open_database",
    "statement",
    "utcnow_naive",
]
