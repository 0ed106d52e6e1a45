"""A throwaway PostgreSQL server for the test session.

`postgres_server()` starts a private cluster (initdb + pg_ctl) in a temporary directory on a free
loopback port, with durability switched off for speed, and removes it afterwards. When
``TOKENWARD_TEST_POSTGRES_URL`` is set it uses that existing server instead and only creates (and
later drops) its own databases there.

Tests get SQLAlchemy URLs of the form ``postgresql+psycopg://postgres@127.0.0.1:<port>/<db>``; use
`PostgresServer.create_database` for a fresh, isolated database.

PostgreSQL refuses to run as root, so when the tests run as root (as in CI) the cluster is owned by
the ``postgres`` system user and the server commands run through ``runuser`` (or ``su``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL, make_url

ENV_MODE = "TOKENWARD_TEST_POSTGRES"
"""``required``: missing PostgreSQL fails the tests; ``off``: always skip; else skip if missing."""
ENV_URL = "TOKENWARD_TEST_POSTGRES_URL"
"""SQLAlchemy/libpq URL of an existing server to use instead of starting one."""
ENV_BINDIR = "TOKENWARD_TEST_POSTGRES_BINDIR"
"""Directory holding ``initdb`` and ``pg_ctl``, if not under /usr/lib/postgresql/*/bin."""

SUPERUSER = "postgres"
SESSION_DATABASE = "tokenward"
START_TIMEOUT_S = 30
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
_HBA = (
    "# tokenward test cluster: trust, loopback only\n"
    "local all all trust\n"
    "host  all all 127.0.0.1/32 trust\n"
    "host  all all ::1/128 trust\n"
)
_MAX_IDENTIFIER = 63


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed here (tests may skip); any other failure is a real error."""


class PostgresStartError(RuntimeError):
    """The server binaries exist but the cluster could not be created or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- locating binaries -------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin/initdb, version "15" or "9.6"
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def find_bindir() -> Path:
    """The bin directory of the highest installed PostgreSQL with both initdb and pg_ctl."""
    if override := os.environ.get(ENV_BINDIR):
        bindir = Path(override)
        if not (bindir / "initdb").is_file():
            raise PostgresUnavailable(f"{ENV_BINDIR}={override} has no initdb")
        return bindir
    candidates = [
        p.parent
        for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key)
        if os.access(p, os.X_OK) and os.access(p.parent / "pg_ctl", os.X_OK)
    ]
    if candidates:
        return candidates[-1]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on "
        f"PATH); run scripts/bootstrap.sh or `apt-get install postgresql`, or set {ENV_URL}"
    )


# --- the server handle -------------------------------------------------------------------------


def database_name(hint: str = "test") -> str:
    """A unique, valid database name that still says where it came from."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_") or "db"
    suffix = uuid.uuid4().hex[:10]
    return f"{slug[: _MAX_IDENTIFIER - len(suffix) - 1]}_{suffix}"


@dataclass
class PostgresServer:
    """A running server: `url` is the session database, `create_database` makes more."""

    base_url: URL
    """Points at the server's maintenance database (``postgres``), with the psycopg driver."""
    database: str = SESSION_DATABASE
    external: bool = False
    """True when the server was given by TOKENWARD_TEST_POSTGRES_URL (we only own our databases)."""
    _created: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the session database."""
        return self.url_for(self.database)

    @property
    def host(self) -> str:
        return self.base_url.host or "127.0.0.1"

    @property
    def port(self) -> int:
        return self.base_url.port or 5432

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://...``) of `database` on this server."""
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def libpq_dsn(self, database: str | None = None) -> str:
        """Plain ``postgresql://`` URL for psycopg/libpq tools."""
        url = self.base_url.set(drivername="postgresql", database=database or self.database)
        return url.render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            self.libpq_dsn(self.base_url.database or "postgres"),
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create an empty database (or a copy of `template`) and return its SQLAlchemy URL.

        `name` defaults to a unique generated one. A `template` must have no open connections.
        """
        name = name or database_name()
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(stmt)
        self._created.append(name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, disconnecting any sessions still attached to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        with contextlib.suppress(ValueError):
            self._created.remove(name)

    def drop_created_databases(self) -> None:
        for name in reversed(list(self._created)):
            self.drop_database(name)


# --- running commands as the cluster owner -------------------------------------------------------


def _owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresStartError(
            "running as root, but there is no 'postgres' system user to own the test cluster "
            "(PostgreSQL refuses to run as root); install the postgresql package or run as non-root"
        ) from None


def _as_owner(cmd: Sequence[str], owner: pwd.struct_passwd | None) -> list[str]:
    if owner is None:
        return list(cmd)
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", owner.pw_name, "--", *cmd]
    return ["su", "-s", "/bin/sh", owner.pw_name, "-c", shlex.join(cmd)]


def _run(cmd: Sequence[str], owner: pwd.struct_passwd | None, *, what: str, log: Path) -> None:
    proc = subprocess.run(
        _as_owner(cmd, owner),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S + 30,
        check=False,
    )
    if proc.returncode != 0:
        log_tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        raise PostgresStartError(
            f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}{log_tail}"
        )


def _base_tmpdir(owner: pwd.struct_passwd | None) -> str:
    """A temp dir short enough for a Unix socket path and reachable by the cluster owner."""
    base = tempfile.gettempdir()
    if len(base) > 60:
        return "/tmp"
    if owner is not None:
        # Every ancestor must be searchable by "other" so the postgres user can get in.
        for parent in [Path(base), *Path(base).parents]:
            if not parent.stat().st_mode & 0o001:
                return "/tmp"
    return base


@dataclass
class _Cluster:
    bindir: Path
    root: Path
    owner: pwd.struct_passwd | None
    port: int = 0

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def init(self) -> None:
        self._chown(self.root)
        _run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            self.owner,
            what="initdb",
            log=self.log,
        )
        hba = self.datadir / "pg_hba.conf"
        hba.write_text(_HBA)
        self._chown(hba)

    def start(self, *, same_port: bool = False) -> None:
        """Start the server: on a free port, or again on the one it had (``same_port``)."""
        # The port can be taken between free_port() and bind(); try a few.
        for attempt in range(3):
            if not (same_port and self.port):
                self.port = free_port()
            options = [f"-k {self.root}", f"-p {self.port}"]
            options += [f"-c {key}={value}" for key, value in _SERVER_SETTINGS.items()]
            try:
                _run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.log),
                        "-o",
                        " ".join(options),
                        "-w",
                        "-t",
                        str(START_TIMEOUT_S),
                        "start",
                    ],
                    self.owner,
                    what="pg_ctl start",
                    log=self.log,
                )
                return
            except PostgresStartError:
                in_use = "already in use" in self.log.read_text(errors="replace")
                if attempt == 2 or same_port or not in_use:
                    raise

    def stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        subprocess.run(
            _as_owner(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                self.owner,
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )


@contextlib.contextmanager
def _local_cluster() -> Iterator[tuple[_Cluster, PostgresServer]]:
    bindir = find_bindir()
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="tokenward-pg-", dir=_base_tmpdir(owner)))
    cluster = _Cluster(bindir=bindir, root=root, owner=owner)
    try:
        cluster.init()
        cluster.start()
        server = PostgresServer(
            base_url=URL.create(
                "postgresql+psycopg",
                username=SUPERUSER,
                host="127.0.0.1",
                port=cluster.port,
                database="postgres",
            )
        )
        server.create_database(SESSION_DATABASE)
        yield cluster, server
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _local_server() -> Iterator[PostgresServer]:
    with _local_cluster() as (_, server):
        yield server


@dataclass
class StoppablePostgres:
    """A cluster of one test's own, which it may stop (like a crash: ``pg_ctl stop -m
    immediate``, every connection cut) and start again on the same port."""

    server: PostgresServer
    _cluster: _Cluster

    def stop(self) -> None:
        self._cluster.stop()

    def start(self) -> None:
        self._cluster.start(same_port=True)


@contextlib.contextmanager
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    """A private PostgreSQL server for fault tests (never the one in the environment: a test
    must not stop a server others use). Raises like `postgres_server`."""
    with _local_cluster() as (cluster, server):
        yield StoppablePostgres(server, cluster)


@contextlib.contextmanager
def _external_server(url: str) -> Iterator[PostgresServer]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{ENV_URL} must be a postgresql:// URL, got {parsed.drivername!r}")
    server = PostgresServer(
        base_url=parsed.set(
            drivername="postgresql+psycopg", database=parsed.database or "postgres"
        ),
        database=database_name("tokenward_session"),
        external=True,
    )
    server.create_database(server.database)
    try:
        yield server
    finally:
        server.drop_created_databases()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the duration of the block: throwaway, or the one in the env.

    Raises `PostgresUnavailable` (before starting anything) if PostgreSQL is not installed, and
    `PostgresStartError` if it is installed but will not start.
    """
    if url := os.environ.get(ENV_URL):
        with _external_server(url) as server:
            yield server
    else:
        with _local_server() as server:
            yield server
