"""Audit log and match log, written by group commit: each request waits for the batch holding its
rows, so none is answered unaudited, and a batch costs one transaction for many requests. Rows say
who, what and when — fingerprints and ids, never media."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, Table

from hashbank.service.keys import Principal
from hashbank.service.tables import audit_log, match_log, webhook_deliveries, webhooks
from hashbank.store.engine import driver_cursor, placeholders

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
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self._settled, error)

    def _settled(self, error: Exception | None) -> None:
        self.timer.cancel()
        _settle(self.done, error)


class _DriverInsert:
    """INSERT of many rows through the driver's executemany, each value through its column's own bind
    processor (what SQLAlchemy's insert() does, at a tenth of its per-row cost on the writer thread,
    which shares the GIL with the event loop)."""

    def __init__(self, engine: Engine, table: Table) -> None:
        dialect = engine.dialect
        quote = dialect.identifier_preparer.quote
        self.columns = [c.name for c in table.c if not c.primary_key]
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in self.columns)}) "
            f"VALUES ({placeholders(dialect, len(self.columns))})"
        )
        self.processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in self.columns]
        #: Scalar column defaults, for rows that leave the column out (as insert() would fill them).
        self.defaults = {c.name: c.default.arg for c in table.c if c.default is not None and c.default.is_scalar}

    def run(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        """executemany on a driver (DB-API) cursor."""
        triples = [(c, p, self.defaults.get(c)) for c, p in zip(self.columns, self.processors, strict=True)]
        cursor.executemany(self.sql, [tuple(p(row.get(c, d)) if p else row.get(c, d) for c, p, d in triples)
                                      for row in rows])


def _audit_row(
    who: Principal | str,
    action: str,
    *,
    bank: str | None = None,
    target: str | None = None,
    status: int = 200,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    actor, role = (who.key_id, who.role) if isinstance(who, Principal) else (who, None)
    return {"at": now(), "actor": actor, "role": role, "action": action, "bank": bank, "target": target,
            "status": status, "detail": detail}


class AuditUnavailable(Exception):
    """The audit log could not be written, so the request is not answered (503)."""


class Recorder:
    """Audit and match-log rows, written in batches by a background thread (group commit).

    A request does not get its answer before its audit row is committed: ``audit`` blocks (and
    ``submit_audit`` gives a future) until the batch holding the row is written. Many requests
    share one transaction, so the cost stays per batch, and a crash loses no answered request's row.
    A failed write keeps the rows for the next batch and fails the requests waiting on it.
    Matches in banks with webhooks also queue one signed delivery per webhook."""

    def __init__(self, engine: Engine, linger: float = 0.005, timeout: float = 30.0) -> None:
        self.engine = engine
        #: How long the writer waits after the first row for others to join its batch.
        self.linger = linger
        self.timeout = timeout
        self._audit: list[dict[str, Any]] = []
        self._matches: list[dict[str, Any]] = []
        #: Called with None (or the error) when the queued rows are written: per thread's future or loop batch.
        self._waiting: list[Callable[[Exception | None], None]] = []
        self._batches: dict[asyncio.AbstractEventLoop, _LoopBatch] = {}
        self._inserts = {t.name: _DriverInsert(engine, t) for t in (audit_log, match_log, webhook_deliveries)}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- rows --------------------------------------------------------------------------------

    def submit_audit(self, who: Principal | str, action: str, **fields: Any) -> Future[None]:
        """Queue an audit row (fields: bank, target, status, detail); the future is done when it is
        committed (or failed: AuditUnavailable). Rows queued before it (e.g. by ``matched``) are
        committed with or before it."""
        row = _audit_row(who, action, **fields)
        done: Future[None] = Future()
        with self._lock:
            self._audit.append(row)
            self._waiting.append(partial(_settle, done))
        self._written_soon()
        return done

    def _written_soon(self) -> None:
        if self._thread is None:  # no writer thread (not serving): write now
            self._flush_quietly()
        else:
            self._wake.set()

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
        self._written_soon()
        return batch.done

    async def audit_async(self, who: Principal | str, action: str, **fields: Any) -> None:
        """Queue an audit row and await its commit without blocking the event loop (AuditUnavailable
        if it fails or takes over ``timeout``)."""
        await asyncio.shield(self.committed(who, action, **fields))  # one request giving up fails no other

    def matched(self, who: Principal, matches: list[dict[str, Any]]) -> None:
        """Log each match (the review queue is the match log's open rows); call before the request's
        ``audit``, which then waits for these rows too."""
        at = now()
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

    # ---- the writer --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (the app's lifespan does)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hashbank-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)
            self._thread = None
        self._flush_quietly()

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
            # First line only: a database error's full text repeats the rows (fingerprints) it held.
            reason = str(exc).splitlines()[0][:300] if str(exc) else ""
            log.warning("writing the audit log failed (rows kept, retried): %s: %s", type(exc).__name__, reason)
            return None

    def flush(self) -> int:
        """Write what is queued; returns how many rows. A failed write keeps the rows queued, fails
        the futures waiting on them, and raises."""
        with self._flushing:
            with self._lock:
                audit, self._audit = self._audit, []
                found, self._matches = self._matches, []
                waiting, self._waiting = self._waiting, []
                self._batches = {}
            try:
                if audit or found:
                    self._write(audit, found)
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

    def _write(self, audit: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
        """One transaction on a driver connection straight from the pool: this runs for every batch on
        a thread sharing the GIL with the event loop, and SQLAlchemy's Connection, events and statement
        building cost more than SQLite's own insert of a whole batch."""
        with driver_cursor(self.engine) as (conn, cursor):
            try:
                if self.engine.dialect.name == "sqlite":  # the driver is in autocommit mode (engine.py)
                    cursor.execute("BEGIN IMMEDIATE")
                if audit:
                    self._inserts[audit_log.name].run(cursor, audit)
                if found:
                    self._inserts[match_log.name].run(cursor, found)
                    self._queue_webhooks(cursor, found)
                conn.commit()
            except BaseException:
                conn.rollback()
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
