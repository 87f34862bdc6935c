"""The host's database: the queries run against it, the documented default schema, and
the SQL helpers (text statements with typed parameters, naive-UTC timestamps)."""

from ._queries import Queries
from ._schema import DEFAULT_SCHEMA, create_default_schema
from ._sql import as_utc, is_postgres, statement, utcnow_naive

__all__ = [
    "DEFAULT_SCHEMA",
    "Queries",
    "as_utc",
    "create_default_schema",
    "is_postgres",
    "statement",
    "utcnow_naive",
]
