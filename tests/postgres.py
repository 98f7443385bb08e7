"""A real PostgreSQL for the service tests: the machine's own binaries, one server per session in a
temporary directory, reachable only through a unix socket (listen_addresses='': no TCP port).

`postgres` (session) is the server: `.url` (libpq conninfo of its `postgres` database),
`.stop()`, `.start()`, `.restart()`, `.database(name, template=None)`.
`database` (per test) is an empty database of its own; `migrated_database` (per test) is a copy of a
database `service.db.migrate` prepared once per session (CREATE DATABASE … TEMPLATE copies files,
which is much faster than running the migrations again for every test).

initdb refuses to run as root ("cannot be run as root", src/bin/initdb/initdb.c), and this machine's
tests run as root: the server then runs as the unprivileged `postgres` user Debian's package creates,
through `runuser`, in a directory that user owns (pytest's own tmp root is 0700 root, which that user
could not enter).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

SERVER_USER = "postgres"
"""The OS account the server runs as when the tests run as root (Debian's package creates it)."""
PORT = 5432
"""Only names the socket file (.s.PGSQL.5432) inside our own directory; no TCP port is opened."""


def find_bindir() -> Path:
    """Where initdb/pg_ctl are: on PATH (Debian links only a few of them into /usr/bin, through
    pg_wrapper), else the newest /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        real = Path(on_path).resolve().parent
        if (real / "pg_ctl").exists():
            return real
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    pytest.fail("PostgreSQL's initdb is not on PATH nor under /usr/lib/postgresql/*/bin: run scripts/setup.sh --dev")


@dataclass
class Postgres:
    bindir: Path
    root: Path
    log: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def url(self) -> str:
        return self.conninfo("postgres")

    def conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir), port=str(PORT), user=SERVER_USER, dbname=dbname, connect_timeout="5"
        )

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            logfile = self.root / "server.log"
            tail = logfile.read_text()[-3000:] if logfile.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr}{done.stdout}\n{tail}")

    def init(self) -> None:
        # --auth=trust: only a process that can open the socket (in our 0700-or-owner directory) connects.
        self._run("initdb", "-D", str(self.data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(PORT),
            "max_connections": "200",
            # Durability against an OS crash is not what these tests probe: without fsync a
            # committed row is still written to the OS before COMMIT returns (synchronous_commit
            # stays on), so a server crash (`stop("immediate")`) keeps it.
            "fsync": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends sessions and shuts down cleanly; `immediate` is a crash (recovery at start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def database(self, name: str | None = None, template: str | None = None) -> str:
        """A new database (a copy of `template` when given); returns its conninfo."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)
        return self.conninfo(name)

    def dump(self, conninfo: str) -> str:
        """`pg_dump --data-only` of a database: every row of every table, as text."""
        done = subprocess.run(
            [str(self.bindir / "pg_dump"), "--data-only", "--dbname", conninfo],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def drop(self, name: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="scoutflo-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(
                f"the tests run as root and there is no {SERVER_USER!r} user to run PostgreSQL as: "
                "install Debian's postgresql (scripts/setup.sh --dev)"
            )
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = Postgres(find_bindir(), root)
    try:
        server.init()
        (root / "sock").mkdir()
        if os.geteuid() == 0:
            os.chown(root / "sock", owner.pw_uid, owner.pw_gid)
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            if server.running():
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _dbname(conninfo: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]  # type: ignore[return-value]


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    """An empty database of this test's own (conninfo)."""
    if not postgres.running():  # a test that stopped the server and failed before starting it
        postgres.start()
    url = postgres.database()
    yield url
    if postgres.running():
        postgres.drop(_dbname(url))


@pytest.fixture(scope="session")
def migrated_template(postgres: Postgres) -> str:
    from service import db

    url = postgres.database("scoutflo_template")
    db.migrate(url)
    return "scoutflo_template"


@pytest.fixture
def migrated_database(postgres: Postgres, migrated_template: str) -> Iterator[str]:
    """A database of this test's own with the service's tables and Procrastinate's schema (conninfo)."""
    if not postgres.running():  # a test that stopped the server and failed before starting it
        postgres.start()
    url = postgres.database(template=migrated_template)
    yield url
    if postgres.running():
        postgres.drop(_dbname(url))
