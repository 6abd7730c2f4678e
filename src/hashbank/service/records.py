"""Audit log and match log, written by group commit: each request waits for the batch holding its
rows, so none is answered unaudited, and a batch costs one transaction for many requests. Rows say
who, what and when — fingerprints and ids, never media."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Engine, Table
from sqlalchemy.engine import Dialect

from hashbank.service.keys import Principal
from hashbank.service.tables import audit_log, match_log, webhook_deliveries, webhooks
from hashbank.store.engine import WalCheckpointer, detached_connection, placeholders

log = logging.getLogger("hashbank.service.records")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _late(timeout: float) -> AuditUnavailable:
    return AuditUnavailable(f"the audit log was not written within {timeout:g} s")


def wait_for(done: Future[None], timeout: float) -> None:
    try:
        done.result(timeout)
    except FutureTimeout:
        raise _late(timeout) from None


def _settle(done: Future[None] | asyncio.Future[None], error: Exception | None = None) -> None:
    """Complete a waiter (a thread's or a loop's future) unless its request gave up already."""
    with contextlib.suppress(InvalidStateError, asyncio.InvalidStateError):
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _LoopBatch:
    """The waiters of one event loop on one batch: a single asyncio future they all wait on, so a
    batch wakes its loop once, not once per request through a thread-safe future each. One timer per
    batch, not per request, fails it if the write takes over ``timeout``."""

    __slots__ = ("done", "loop", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.timer = loop.call_later(timeout, _settle, self.done, _late(timeout))

    def settle(self, error: Exception | None = None) -> None:
        if _running_loop() is self.loop:  # written on the loop itself
            self._settled(error)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self._settled, error)

    def _settled(self, error: Exception | None) -> None:
        self.timer.cancel()
        _settle(self.done, error)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode


def _binder(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of ``column`` goes to the driver: what SQLAlchemy's bind processor does, in C
    where the type allows (the writer shares the GIL with the event loop, and SQLAlchemy's DATETIME
    and JSON processors were a fifth of its time)."""
    if isinstance(column.type, JSON):
        return lambda value: None if value is None else _COMPACT_JSON(value)
    if isinstance(column.type, DateTime) and dialect.name == "sqlite":
        # SQLAlchemy's SQLite storage format for naive datetimes: microseconds always written.
        return lambda value: None if value is None else value.isoformat(" ", "microseconds")
    return column.type.dialect_impl(dialect).bind_processor(dialect)


class _DriverInsert:
    """INSERT of many rows as one multi-row statement on a driver (DB-API) cursor.

    One statement, not executemany: sqlite3 releases and retakes the GIL around every step, so a
    statement a row would make the writer queue behind the event loop for the GIL once per row."""

    #: Rows per statement: far below SQLite's 32,766 bind variables and PostgreSQL's 65,535.
    CHUNK = 500

    def __init__(self, dialect: Dialect, table: Table) -> None:
        quote = dialect.identifier_preparer.quote
        columns = [c for c in table.c if not c.primary_key]
        self.head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) VALUES "
        self.row_marks = f"({placeholders(dialect, len(columns))})"
        #: (name, scalar default for rows that leave it out, as insert() would fill it).
        self.defaults = [(c.name, c.default.arg if c.default is not None and c.default.is_scalar else None)
                         for c in columns]
        binders = [_binder(c, dialect) for c in columns]
        self.converted = [(i, bind) for i, bind in enumerate(binders) if bind is not None]
        self._sql: dict[int, str] = {}

    def run(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        defaults, converted = self.defaults, self.converted
        for start in range(0, len(rows), self.CHUNK):
            chunk = rows[start : start + self.CHUNK]
            params: list[Any] = []
            for row in chunk:
                values = [row.get(name, default) for name, default in defaults]
                for i, bind in converted:
                    values[i] = bind(values[i])
                params += values
            sql = self._sql.get(len(chunk))
            if sql is None:
                sql = self._sql[len(chunk)] = self.head + ", ".join([self.row_marks] * len(chunk))
            cursor.execute(sql, params)


def _log_failure(exc: Exception) -> None:
    # First line only: a database error's full text repeats the rows (fingerprints) it held.
    reason = str(exc).splitlines()[0][:300] if str(exc) else ""
    log.warning("writing the audit log failed (rows kept, retried): %s: %s", type(exc).__name__, reason)


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY: another connection holds the write lock."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def _audit_row(
    who: Principal | str,
    action: str,
    *,
    bank: str | None = None,
    target: str | None = None,
    status: int = 200,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    actor, role = (who.key_id, who.role) if isinstance(who, Principal) else (who, None)
    return {"at": at or now(), "actor": actor, "role": role, "action": action, "bank": bank, "target": target,
            "status": status, "detail": detail}


class AuditUnavailable(Exception):
    """The audit log could not be written, so the request is not answered (503)."""


class DatabaseBusy(Exception):
    """SQLite's write lock is held elsewhere (another worker's commit, a bulk import): try again."""


class Recorder:
    """Audit and match-log rows, written in batches (group commit).

    A request does not get its answer before its audit row is committed: ``audit`` blocks (and
    ``submit_audit`` gives a future) until the batch holding the row is written. Many requests
    share one transaction, so the cost stays per batch, and a crash loses no answered request's row.
    A failed write keeps the rows for the next batch and fails the requests waiting on it.
    Matches in banks with webhooks also queue one signed delivery per webhook.

    Where the batches are written depends on the store. On PostgreSQL, a writer thread (a commit is a
    network round trip and an fsync on the server: the event loop must not wait for it), which lingers
    a moment so concurrent requests share a commit. On SQLite, on the serving event loop itself,
    once per loop iteration: everything the requests read in one pass of the loop shares a commit, and
    there is no thread to hand rows to and wake (that handing-over cost more than SQLite's commit, and
    the thread's small batches each paid a commit: 1.45x the lookups/s of the thread in
    bench/service_bench.py). The loop never waits for another process's write lock (it tries again a
    moment later) nor for a WAL checkpoint (a ``WalCheckpointer`` thread does them)."""

    def __init__(self, engine: Engine, linger: float = 0.005, timeout: float = 30.0) -> None:
        self.engine = engine
        #: How long the writer thread waits after the first row for others to join its batch.
        self.linger = linger
        self.timeout = timeout
        self.sqlite = engine.dialect.name == "sqlite"
        self._audit: list[dict[str, Any]] = []
        self._matches: list[dict[str, Any]] = []
        #: Called with None (or the error) when the queued rows are written: per thread's future or loop batch.
        self._waiting: list[Callable[[Exception | None], None]] = []
        self._batches: dict[asyncio.AbstractEventLoop, _LoopBatch] = {}
        self._inserts = {t.name: _DriverInsert(engine.dialect, t) for t in (audit_log, match_log, webhook_deliveries)}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        #: On SQLite, while serving: the loop that writes, whether a write is scheduled on it, the retry delay.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._retry = 0.0
        self._checkpointer: WalCheckpointer | None = None

    # ---- rows --------------------------------------------------------------------------------

    def submit_audit(self, who: Principal | str, action: str, **fields: Any) -> Future[None]:
        """Queue an audit row (fields: bank, target, status, detail); the future is done when it is
        committed (or failed: AuditUnavailable). Rows queued before it (e.g. by ``matched``) are
        committed with or before it. For threads other than the serving loop's."""
        row = _audit_row(who, action, **fields)
        done: Future[None] = Future()
        with self._lock:
            self._audit.append(row)
            self._waiting.append(partial(_settle, done))
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: stop() writes what is left
                self._loop.call_soon_threadsafe(self._write_soon)
        elif self._thread is not None:
            self._wake.set()
        else:  # not serving: write now
            self._flush_quietly()
        return done

    def audit(self, who: Principal | str, action: str, **fields: Any) -> None:
        """``submit_audit`` and wait until the row is committed (for routes running in a thread)."""
        wait_for(self.submit_audit(who, action, **fields), self.timeout)

    def committed(self, who: Principal | str, action: str, **fields: Any) -> asyncio.Future[None]:
        """Queue an audit row from the event loop; the future (shared by this loop's requests in the
        batch: never cancel it, shield it to await) is done when the row is committed, or fails with
        AuditUnavailable when the write fails or takes over ``timeout``."""
        loop = asyncio.get_running_loop()
        row = _audit_row(who, action, **fields)
        with self._lock:
            self._audit.append(row)
            batch = self._batches.get(loop)
            if batch is None:
                batch = self._batches[loop] = _LoopBatch(loop, self.timeout)
                self._waiting.append(batch.settle)
        if self._thread is not None:
            if not self._wake.is_set():
                self._wake.set()
        elif self._loop is not None:
            self._write_soon()
        else:  # not serving: write now
            self._flush_quietly()
        return batch.done

    async def audit_async(self, who: Principal | str, action: str, **fields: Any) -> None:
        """Queue an audit row and await its commit without blocking the event loop (AuditUnavailable
        if it fails or takes over ``timeout``)."""
        await asyncio.shield(self.committed(who, action, **fields))  # one request giving up fails no other

    def matched(self, who: Principal, matches: list[dict[str, Any]], at: datetime | None = None) -> None:
        """Log each match (the review queue is the match log's open rows); call before the request's
        ``audit``, which then waits for these rows too."""
        at = at or now()
        rows = [
            {
                "at": at,
                "actor": who.key_id,
                "bank": m["bank"],
                "entry_id": m["entry_id"],
                "category": m.get("category"),
                "signal": m["signal"],
                "value": m["value"],
                "query_signal": m.get("query_signal"),
                "distance": m["distance"],
                "review": "open",
            }
            for m in matches
        ]
        with self._lock:
            self._matches.extend(rows)

    # ---- writing while serving ----------------------------------------------------------------

    def start(self) -> None:
        """Start writing in the background: with SQLite, called on an event loop (the app's lifespan
        is), on that loop; otherwise on a writer thread. SQLite's WAL gets a checkpointer thread."""
        self._stop.clear()
        if self.sqlite:
            self._checkpointer = WalCheckpointer(self.engine)
            self._checkpointer.start()
            self._loop = _running_loop()
            if self._loop is not None:
                return
        self._thread = threading.Thread(target=self._run, name="hashbank-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop writing in the background and write what is left (from any thread)."""
        self._stop.set()
        self._wake.set()
        self._loop = None
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)
            self._thread = None
        self._flush_quietly()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._flushing:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write_soon(self) -> None:
        """On the loop: write the queued rows once the callbacks ready now have run (the requests
        read in this pass of the loop queue theirs first)."""
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._write_on_loop)

    def _write_on_loop(self) -> None:
        self._scheduled = False
        if self._loop is None:
            return
        try:
            self._flush_once(wait=False)
            self._retry = 0.0
        except DatabaseBusy:  # another process holds the write lock: again in a moment
            self._retry = min(max(self._retry * 2, 0.001), 0.05)
            self._again(self._retry)
        except Exception as exc:
            _log_failure(exc)
            self._again(0.5)  # the database is away: retry, not spin

    def _again(self, delay: float) -> None:
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_later(delay, self._write_on_loop)

    def _run(self) -> None:
        company = True  # did the last batch hold more than one request's rows?
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            # Under load, let concurrent requests join this batch: the commit, not the row, is what costs.
            # A lone request (the last batch was one too) is written at once: nobody to wait for.
            if company:
                self._stop.wait(self.linger)
            self._wake.clear()
            with self._lock:
                company = len(self._audit) > 1
            if self._flush_quietly() is None:
                self._stop.wait(0.5)  # the database is away: retry, not spin

    def _flush_quietly(self) -> int | None:
        """flush(), logging a failure (None) instead of raising."""
        try:
            return self.flush()
        except Exception as exc:
            _log_failure(exc)
            return None

    # ---- writing ------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is queued, waiting for the write lock if need be; returns how many rows. A failed
        write keeps the rows queued, fails the futures waiting on them, and raises. Not on the serving
        loop (it may wait)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._flush_once(wait=True)
            except DatabaseBusy:
                if time.monotonic() > deadline:
                    raise _late(self.timeout) from None
                time.sleep(0.005)

    def _flush_once(self, wait: bool) -> int:
        """One attempt; DatabaseBusy (rows kept queued, nobody failed) if the write lock is held
        elsewhere, or if ``wait`` is False and another thread is writing."""
        if not self._flushing.acquire(blocking=wait):
            raise DatabaseBusy
        try:
            with self._lock:
                audit, self._audit = self._audit, []
                found, self._matches = self._matches, []
                waiting, self._waiting = self._waiting, []
                batches, self._batches = self._batches, {}
            try:
                if audit or found:
                    self._write(audit, found)
            except DatabaseBusy:
                with self._lock:  # back in front, with their waiters
                    self._audit[:0], self._matches[:0], self._waiting[:0] = audit, found, waiting
                    for loop, batch in batches.items():
                        self._batches.setdefault(loop, batch)
                raise
            except Exception as exc:
                with self._lock:
                    self._audit[:0], self._matches[:0] = audit, found
                failed = AuditUnavailable(f"the audit log could not be written: {type(exc).__name__}")
                for settle in waiting:
                    settle(failed)
                raise
            for settle in waiting:
                settle(None)
            return len(audit) + len(found)
        finally:
            self._flushing.release()

    def _connection(self) -> Any:
        """The writer's own driver connection (under ``_flushing``): SQLAlchemy's Connection, or even
        its pool's checkout and reset, cost more than SQLite's own insert of a whole batch. On SQLite
        it waits at most a few ms for another's write lock (it can be on the event loop: it retries
        instead) and leaves WAL checkpoints to the ``WalCheckpointer``."""
        if self._conn is None:
            self._conn = detached_connection(self.engine)
            if self.sqlite:
                self._conn.execute("PRAGMA busy_timeout=5")
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
        return self._conn

    def _write(self, audit: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
        """One transaction; a connection that fails is dropped (the next batch opens another)."""
        conn = self._connection()
        try:
            cursor = conn.cursor()
            try:
                if self.sqlite:  # the driver is in autocommit mode (engine.py)
                    cursor.execute("BEGIN IMMEDIATE")
                if audit:
                    self._inserts[audit_log.name].run(cursor, audit)
                if found:
                    self._inserts[match_log.name].run(cursor, found)
                    self._queue_webhooks(cursor, found)
                conn.commit()
            finally:
                cursor.close()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            if _is_busy(exc):
                raise DatabaseBusy from None
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def _queue_webhooks(self, cursor: Any, found: list[dict[str, Any]]) -> None:
        banks = sorted({row["bank"] for row in found})
        marks = placeholders(self.engine.dialect, len(banks))
        cursor.execute(f"SELECT id, bank FROM {webhooks.name} WHERE bank IN ({marks})", banks)
        hooks = cursor.fetchall()
        if not hooks:
            return
        at = now()
        deliveries = []
        for hook_id, bank in hooks:
            mine = [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "review"}
                for row in found
                if row["bank"] == bank
            ]
            body = json.dumps({"event": "match", "bank": bank, "webhook_id": hook_id, "matches": mine})
            deliveries.append(
                {"webhook_id": hook_id, "created_at": at, "body": body, "status": "pending", "attempts": 0,
                 "next_attempt_at": at}
            )
        self._inserts[webhook_deliveries.name].run(cursor, deliveries)
