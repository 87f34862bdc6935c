"""The PostgreSQL trigger that makes every insert into the audit table push to dashboards,
whoever the writer (the DDL, the start-up check that it is in place, and whether it
publishes this instance's actions).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from ..db import HostDatabase, SqlDatabase, is_postgres, open_database, statement
from ..settings import Settings

__all__ = ["AuditTrigger", "audit_trigger_installed", "install_audit_trigger"]


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
    database: HostDatabase | SqlDatabase, *, prefix: str = "adminstats", table: str = "audit_log"
) -> None:
    """Make every insert into the audit table push to dashboards, whoever the writer.

    PostgreSQL only; idempotent. ``prefix`` and ``table`` are ``Settings.channel_prefix``
    and ``Settings.audit_table`` (both validated identifiers). ``database`` is an
    ``AsyncEngine`` or a connected ``databases.Database``.
    """
    database = open_database(database)
    if not is_postgres(database):
        raise ValueError("the audit trigger needs PostgreSQL (database_url postgresql://...)")
    async with database.transaction():
        for ddl in _trigger_ddl(prefix, table):
            await database.execute(ddl)


async def audit_trigger_installed(
    database: HostDatabase | SqlDatabase, *, prefix: str = "adminstats", table: str = "audit_log"
) -> bool:
    database = open_database(database)
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


class AuditTrigger:
    """Whether the trigger publishes this instance's actions, so ``record_action`` need not.

    Only when it is installed and the bus listens on the same PostgreSQL database: its
    NOTIFY reaches no other bus.
    """

    def __init__(
        self, database: HostDatabase | SqlDatabase, settings: Settings, *, bus_engine: str
    ) -> None:
        self._database = open_database(database)
        self._prefix = settings.channel_prefix
        self._table = settings.audit_table
        self._bus_url = settings.broadcast_url
        self._bus_engine = bus_engine
        self._pushes = False

    @property
    def pushes(self) -> bool:
        """True once the trigger is known to publish every insert on this instance's bus."""
        return self._pushes

    async def detect(self) -> None:
        """At start-up: is the trigger already in place (``adminstats init-db``)?"""
        self._pushes = self._bus_shares_database() and await audit_trigger_installed(
            self._database, prefix=self._prefix, table=self._table
        )

    async def install(self) -> None:
        await install_audit_trigger(self._database, prefix=self._prefix, table=self._table)
        self._pushes = self._bus_shares_database()

    def _bus_shares_database(self) -> bool:
        if not is_postgres(self._database) or self._bus_engine != "postgresql":
            return False
        bus = make_url(self._bus_url)
        db = self._database.url
        return (bus.host, bus.port, bus.database) == (db.host, db.port, db.database)
