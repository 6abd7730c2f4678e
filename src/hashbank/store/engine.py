"""Engines for SQLite (WAL, serialised writers) and PostgreSQL, and schema migration on first use."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Dialect

log = logging.getLogger("hashbank.store")

#: Any constant: PostgreSQL writers take this transaction-scoped lock so that change
#: sequence numbers become visible in the order they were handed out (no gaps a
#: consumer could skip past).
WRITE_LOCK_KEY = 0x68617368


def make_engine(url: str) -> Engine:
    """An engine with hashbank's connection settings for the URL's backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


#: 64 MiB of page cache: random PDQ keys make index inserts touch pages all over the file.
_CACHE = "cache_size=-65536"


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit one cannot be IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000", _CACHE):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front: no deadlock upgrading a read lock later.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("hashbank_write") else "BEGIN")


def placeholders(dialect: Dialect, count: int) -> str:
    """``count`` bind markers in the driver's own style (sqlite3: ?, psycopg: %s), comma-separated."""
    return ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * count)


@contextmanager
def driver_cursor(engine: Engine) -> Iterator[tuple[Any, Any]]:
    """A DB-API connection from the engine's pool and a cursor on it; after, the cursor is closed and
    the connection goes back to the pool (which ends any transaction left open). For hot paths where
    SQLAlchemy's own layers cost more than the statement."""
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        try:
            yield conn, cursor
        finally:
            cursor.close()
    finally:
        conn.close()


def detached_connection(engine: Engine, *, autocommit: bool = False) -> Any:
    """A DB-API connection of the engine's taken out of its pool: ours until closed (the pool no
    longer counts or resets it), for a thread that keeps one for its life. ``autocommit``: no
    transaction left open between statements (SQLite's driver is in autocommit mode already)."""
    fairy = engine.raw_connection()
    if autocommit and engine.dialect.name == "postgresql":
        fairy.driver_connection.autocommit = True  # type: ignore[union-attr]
    fairy.detach()
    return fairy


class Readers:
    """One DB-API connection per thread, in autocommit, for one-statement reads on hot paths: checking
    a connection out of SQLAlchemy's pool and back (with its reset) costs more than such a read.
    Each read sees the newest commit, as a fresh pooled connection would."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of ``sql`` (in the driver's paramstyle); a connection that fails is replaced and the
        read tried once more (the server restarted, say) before the error is raised."""
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None) or self._connect()
            try:
                cursor = conn.cursor()
                try:
                    cursor.execute(sql, params)
                    return cursor.fetchall()
                finally:
                    cursor.close()
            except Exception:
                self._local.conn = None
                with contextlib.suppress(Exception):
                    conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connect(self) -> Any:
        fairy = detached_connection(self.engine, autocommit=True)
        self._local.conn = fairy
        with self._lock:
            self._all.append(fairy)
        return fairy

    def close(self) -> None:
        with self._lock:
            held, self._all = self._all, []
        for conn in held:
            with contextlib.suppress(Exception):  # another thread's sqlite3 connection may refuse
                conn.close()


class WalCheckpointer:
    """A thread folding an SQLite WAL into the database, for writers whose connection has automatic
    checkpoints off (``PRAGMA wal_autocheckpoint=0``) because they commit on an event loop: the
    automatic checkpoint runs inside the commit that crosses 1,000 pages and fsyncs twice (40-500 ms
    on the development VM), with every request waiting.

    Each round is a PASSIVE checkpoint (what SQLite's own does: it never blocks writers). Readers that
    never pause keep the WAL from starting over, so once it holds ``restart_pages`` a RESTART waits a
    moment (``busy_ms``) for them; writers meanwhile get SQLITE_BUSY for that long and retry."""

    def __init__(self, engine: Engine, interval: float = 1.0, restart_pages: int = 4096, busy_ms: int = 20) -> None:
        self.engine, self.interval, self.restart_pages, self.busy_ms = engine, interval, restart_pages, busy_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hashbank-wal-checkpointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(self.interval):
            try:
                conn = conn or self._connect()
                self.checkpoint(conn)
            except Exception as exc:  # the database may be away for a moment: try again next round
                log.warning("WAL checkpoint failed: %s", type(exc).__name__)
                with contextlib.suppress(Exception):
                    conn.close()  # type: ignore[union-attr]
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                self.checkpoint(conn)
                conn.close()

    def _connect(self) -> Any:
        conn = detached_connection(self.engine)
        conn.execute(f"PRAGMA busy_timeout={self.busy_ms}")
        return conn

    def checkpoint(self, conn: Any) -> tuple[int, int]:
        """One round: (pages in the WAL, pages folded into the database) after it."""
        _busy, pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages >= self.restart_pages:
            _busy, pages, done = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return pages, done


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One serialised write transaction, committed on success."""
    with engine.connect() as conn:
        conn.execution_options(hashbank_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
            yield conn


def alembic_config() -> Config:
    """Alembic configuration for the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", "hashbank.store:migrations")
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision shipped in the package."""
    config = alembic_config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
