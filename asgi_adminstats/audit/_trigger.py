"""The PostgreSQL trigger that makes every insert into the audit table push to dashboards,
whoever the writer (the DDL, the start-up check that it is in place, and whether it
publishes this instance's actions).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from ..db import HostDatabase, SqlDatabase, is_postgres, open_database, statement
from ..settings import Settings
from ..telemetry import get_logger

__all__ = ["AuditTrigger", "audit_trigger_installed", "install_audit_trigger"]

logger = get_logger("asgi_adminstats.audit")


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
    """Whether the trigger is in place, and who sends its notifications to the dashboards.

    Installed and the bus on the same PostgreSQL database: its NOTIFY is the bus message
    (``pushes``), so ``record_action`` need not publish. Installed with another bus
    (Redis, memory, another database): the producer listens on the database and
    forwards each id on the bus (``listens``; ``AuditWatcher``).
    """

    def __init__(
        self, database: HostDatabase | SqlDatabase, settings: Settings, *, bus_engine: str
    ) -> None:
        self._database = open_database(database)
        self.settings = settings
        self._prefix = settings.channel_prefix
        self._table = settings.audit_table
        self._bus_url = settings.broadcast_url
        self._bus_engine = bus_engine
        self.installed = False

    @property
    def pushes(self) -> bool:
        """True once the trigger is known to publish every insert on this instance's bus."""
        return self.installed and self._bus_shares_database()

    @property
    def listens(self) -> bool:
        """Installed, but its NOTIFY reaches no bus: the producer must listen for it."""
        return self.installed and not self._bus_shares_database()

    @property
    def channel(self) -> str:
        return f"{self._prefix}_audit"

    @property
    def dsn(self) -> str:
        """The database's URL for a LISTEN connection (asyncpg's form, with the password)."""
        url = self._database.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def start(self) -> None:
        """At start-up: install the trigger if the settings ask, else see if it is there."""
        if self.settings.install_audit_trigger and is_postgres(self._database):
            await self._install_or_warn()
        await self.detect()

    async def detect(self) -> None:
        """Is the trigger already in place (``adminstats init-db``)?"""
        self.installed = await audit_trigger_installed(
            self._database, prefix=self._prefix, table=self._table
        )

    async def install(self) -> None:
        await install_audit_trigger(self._database, prefix=self._prefix, table=self._table)
        self.installed = True

    async def _install_or_warn(self) -> None:
        if await audit_trigger_installed(self._database, prefix=self._prefix, table=self._table):
            return  # instances starting together would otherwise replace it in turn
        try:
            await self.install()
        except Exception as exc:
            if not _denied(exc):
                raise  # the feed warns (no audit table, database down)
            logger.warning(
                "install_audit_trigger: the database role may not create the audit trigger "
                "(%s); rows from other writers are polled every %g s instead. Run once, "
                "as the table's owner: adminstats init-db --database-url <url> "
                "--prefix %s --table %s",
                (str(exc).splitlines() or [""])[0],
                self.settings.audit_watch_interval,
                self._prefix,
                self._table,
            )
        else:
            logger.info("installed the audit trigger %s_audit_notify", self._prefix)

    def _bus_shares_database(self) -> bool:
        if not is_postgres(self._database) or self._bus_engine != "postgresql":
            return False
        bus = make_url(self._bus_url)
        db = self._database.url
        return (bus.host, bus.port, bus.database) == (db.host, db.port, db.database)


def _denied(exc: BaseException | None) -> bool:
    """A PostgreSQL permission error (SQLSTATE 42501), as asyncpg or SQLAlchemy raise it."""
    for _ in range(5):  # SQLAlchemy wraps the driver's error (``orig``, ``__cause__``)
        if exc is None:
            return False
        if getattr(exc, "sqlstate", None) == "42501" or getattr(exc, "pgcode", None) == "42501":
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False
