"""Connections and migrations of the service's PostgreSQL database.

`migrate` brings a database to this checkout's schema: the service's own migrations
(service/migrations/NNNN_*.sql) and Procrastinate's schema, each applied once and recorded in
`scoutflo_migrations`, all in ONE transaction under an advisory lock, so two processes migrating at
once (two workers starting together) apply everything exactly once and a failure leaves nothing
half-applied (PostgreSQL's DDL is transactional)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from procrastinate import schema as procrastinate_schema

from service.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

LOCK_CLASS_MIGRATE = 0x5C0F_0001
"""Advisory lock keys of the service are pairs (class, key); PostgreSQL keeps the two-int key space
apart from the single-bigint one ("these two key spaces do not overlap", PostgreSQL docs, Advisory
Lock Functions), so nothing of Procrastinate's or a worker's bigint locks collides with these."""
LOCK_CLASS_TENANT = 0x5C0F_0002
"""service.store serializes the writes of one tenant's previews and approvals on (this, hashtext(tenant))."""

PROCRASTINATE = "procrastinate"
"""Prefix of Procrastinate's rows in scoutflo_migrations: `procrastinate/schema` for the whole
schema of a fresh database, `procrastinate/<file>` for each of its migration scripts."""

CONNECT_TIMEOUT = 10


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection, or DatabaseUnavailable naming the server (never the password)."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT, **kwargs)
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"cannot reach the database {describe(url)}: {_first_line(err)}") from None


@contextlib.contextmanager
def session(url: str) -> Iterator[psycopg.Connection[Any]]:
    """One connection for one call: committed when the block ends, discarded (rolled back by the
    server) when it raises; a database lost at any point, the commit included, is DatabaseUnavailable."""
    conn = connect(url)
    try:
        with unavailable_as_typed(url):
            yield conn
            conn.commit()
    finally:
        conn.close()


def describe(url: str) -> str:
    """host/dbname of a conninfo, for messages: a password never appears in one."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(malformed SCOUTFLO_DATABASE_URL)"
    return f"{parts.get('host', 'localhost')}/{parts.get('dbname', '')}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


@contextlib.contextmanager
def unavailable_as_typed(url: str = "") -> Iterator[None]:
    """A lost connection (server restarted, network gone) as DatabaseUnavailable. Every write of
    this package is one transaction, so at that point nothing of the call was committed."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as err:
        where = f" {describe(url)}" if url else ""
        raise DatabaseUnavailable(f"lost the database{where}: {_first_line(err)}; nothing was written") from None


def service_migrations() -> list[tuple[str, str]]:
    """(name, SQL) of the service's migrations, in order."""
    return [
        (path.name, path.read_text(encoding="utf-8")) for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    ]


def procrastinate_migrations() -> list[str]:
    """File names of the migration scripts shipped with the installed Procrastinate, in order
    (procrastinate/schema.py: SchemaManager.get_migrations_path)."""
    path = Path(procrastinate_schema.SchemaManager.get_migrations_path())
    return sorted(p.name for p in path.glob("*.sql"))


def migrate(target: str | psycopg.Connection[Any]) -> list[str]:
    """Apply what is missing; returns the names applied now (empty when up to date).

    Procrastinate 3.x keeps no record of its own schema: `SchemaManager.apply_schema` runs the whole
    `schema.sql` (procrastinate/schema.py L19-L35 in 3.10.0), which fails on a database that has it
    already (CREATE TYPE procrastinate_job_status …), and upgrades are the SQL scripts under
    `get_migrations_path()`, of which "it's your responsibility to keep track"
    (docs/howto/production/migrations.md). So: a fresh database gets `get_schema()` (the schema as
    of the installed version, which includes every shipped script) and every shipped script is
    recorded as applied; a database migrated by an older Procrastinate gets the scripts it has not
    recorded, in name order (names are `xx.yy.zz_nn_…`, sortable). We execute get_schema()'s text on
    our own connection instead of calling apply_schema(), which would run it on a pool connection of
    its own (sync_psycopg_connector.py L181-L184) outside our transaction and our lock.
    """
    if isinstance(target, str):
        with connect(target) as conn, unavailable_as_typed(target):
            return _migrate(conn)
    with unavailable_as_typed():
        return _migrate(target)


def _migrate(conn: psycopg.Connection[Any]) -> list[str]:
    applied: list[str] = []
    with conn.transaction():
        # Transaction-scoped: released at commit or rollback, and by the server if we die.
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS_MIGRATE,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS scoutflo_migrations ("
            " name text PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM scoutflo_migrations")}

        def record(name: str) -> None:
            conn.execute("INSERT INTO scoutflo_migrations (name) VALUES (%s)", (name,))
            applied.append(name)

        for name, text in service_migrations():
            if name not in done:
                # No parameters: psycopg sends the text as is (no %-placeholder parsing).
                conn.execute(text.encode())
                record(name)
        scripts = [f"{PROCRASTINATE}/{name}" for name in procrastinate_migrations()]
        if f"{PROCRASTINATE}/schema" not in done:
            conn.execute(procrastinate_schema.SchemaManager.get_schema().encode())
            record(f"{PROCRASTINATE}/schema")
            for name in scripts:
                record(name)
        else:
            path = Path(procrastinate_schema.SchemaManager.get_migrations_path())
            for name in scripts:
                if name not in done:
                    conn.execute((path / name.removeprefix(f"{PROCRASTINATE}/")).read_bytes())
                    record(name)
    return applied


def applied_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM scoutflo_migrations ORDER BY applied, name")]
