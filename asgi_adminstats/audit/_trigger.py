"""The PostgreSQL trigger that makes every insert into the audit table push to dashboards,
whoever the writer (the DDL, and the start-up check that it is in place).
"""

from __future__ import annotations

from databases import Database

from ..db import is_postgres, statement

__all__ = ["audit_trigger_installed", "install_audit_trigger"]


def _trigger_ddl(prefix: str, table: str) -> tuple[str, ...]:
    # Only the id travels: NOTIFY payloads are capped at 8000 bytes, and every instance
    # reads and redacts the row itself. NOTIFY is sent when the transaction commits.
    function = f"{prefix}_notify_audit"
    return (
        f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{prefix}_audit', NEW.id::text);
            RETURN NULL;
        END $$""",
        f"DROP TRIGGER IF EXISTS {prefix}_audit_notify ON {table}",
        f"""CREATE TRIGGER {prefix}_audit_notify AFTER INSERT ON {table}
        FOR EACH ROW EXECUTE FUNCTION {function}()""",
    )


async def install_audit_trigger(
    database: Database, *, prefix: str = "adminstats", table: str = "audit_log"
) -> None:
    """Make every insert into the audit table push to dashboards, whoever the writer.

    PostgreSQL only; idempotent. ``prefix`` and ``table`` are ``Settings.channel_prefix``
    and ``Settings.audit_table`` (both validated identifiers).
    """
    if not is_postgres(database):
        raise ValueError("the audit trigger needs PostgreSQL (database_url postgresql://...)")
    async with database.transaction():
        for ddl in _trigger_ddl(prefix, table):
            await database.execute(ddl)


async def audit_trigger_installed(
    database: Database, *, prefix: str = "adminstats", table: str = "audit_log"
) -> bool:
    if not is_postgres(database):
        return False
    found = await database.fetch_val(
        statement(
            "SELECT COUNT(*) FROM pg_trigger WHERE tgname = :name"
            " AND tgrelid = to_regclass(:table)",
            name=f"{prefix}_audit_notify",
            table=table,
        )
    )
    return bool(found)
