"""Audit log and match log, written by group commit: each request waits for the batch holding its
rows, so none is answered unaudited, and a batch costs one transaction for many requests. Rows say
who, what and when — fingerprints and ids, never media."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from hashbank.service.keys import Principal
from hashbank.service.tables import audit_log, match_log, webhook_deliveries, webhooks

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


async def wait_async(done: Future[None], timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.wrap_future(done), timeout)
    except TimeoutError:
        raise _late(timeout) from None


def _settle(done: Future[None], error: Exception | None = None) -> None:
    """Complete a waiter unless its request gave up (timed out or disconnected) already."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class AuditUnavailable(Exception):
    """The audit log could not be written, so the request is not answered (503)."""


class Recorder:
    """Audit and match-log rows, written in batches by a background thread (group commit).

    A request does not get its answer before its audit row is committed: ``audit`` blocks (and
    ``submit_audit`` gives a future) until the batch holding the row is written. Many requests
    share one transaction, so the cost stays per batch, and a crash loses no answered request's row.
    A failed write keeps the rows for the next batch and fails the requests waiting on it.
    Matches in banks with webhooks also queue one signed delivery per webhook."""

    def __init__(self, engine: Engine, linger: float = 0.002, timeout: float = 30.0) -> None:
        self.engine = engine
        #: How long the writer waits after the first row for others to join its batch.
        self.linger = linger
        self.timeout = timeout
        self._audit: list[dict[str, Any]] = []
        self._matches: list[dict[str, Any]] = []
        self._waiting: list[Future[None]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- rows --------------------------------------------------------------------------------

    def submit_audit(
        self,
        who: Principal | str,
        action: str,
        *,
        bank: str | None = None,
        target: str | None = None,
        status: int = 200,
        detail: dict[str, Any] | None = None,
    ) -> Future[None]:
        """Queue an audit row; the future is done when it is committed (or failed: AuditUnavailable).
        Rows queued before it (e.g. by ``matched``) are committed with or before it."""
        actor, role = (who.key_id, who.role) if isinstance(who, Principal) else (who, None)
        row = {
            "at": now(),
            "actor": actor,
            "role": role,
            "action": action,
            "bank": bank,
            "target": target,
            "status": status,
            "detail": detail,
        }
        done: Future[None] = Future()
        with self._lock:
            self._audit.append(row)
            self._waiting.append(done)
        if self._thread is None:  # no writer thread (not serving): write now
            self._flush_quietly()
        else:
            self._wake.set()
        return done

    def audit(self, who: Principal | str, action: str, **fields: Any) -> None:
        """``submit_audit`` and wait until the row is committed (for routes running in a thread)."""
        wait_for(self.submit_audit(who, action, **fields), self.timeout)

    async def audit_async(self, who: Principal | str, action: str, **fields: Any) -> None:
        """``submit_audit`` and await the commit without blocking the event loop."""
        await wait_async(self.submit_audit(who, action, **fields), self.timeout)

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
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(self.linger)  # let concurrent requests join this batch
            self._wake.clear()
            if not self._flush_quietly():
                self._stop.wait(0.5)  # the database is away: retry, not spin

    def _flush_quietly(self) -> bool:
        try:
            self.flush()
        except Exception as exc:
            # First line only: a database error's full text repeats the rows (fingerprints) it held.
            reason = str(exc).splitlines()[0][:300] if str(exc) else ""
            log.warning("writing the audit log failed (rows kept, retried): %s: %s", type(exc).__name__, reason)
            return False
        return True

    def flush(self) -> int:
        """Write what is queued; returns how many rows. A failed write keeps the rows queued, fails
        the futures waiting on them, and raises."""
        with self._flushing:
            with self._lock:
                audit, self._audit = self._audit, []
                found, self._matches = self._matches, []
                waiting, self._waiting = self._waiting, []
            try:
                if audit or found:
                    with self.engine.begin() as conn:
                        if audit:
                            conn.execute(insert(audit_log), audit)
                        if found:
                            conn.execute(insert(match_log), found)
                            self._queue_webhooks(conn, found)
            except Exception as exc:
                with self._lock:
                    self._audit[:0], self._matches[:0] = audit, found
                failed = AuditUnavailable(f"the audit log could not be written: {type(exc).__name__}")
                for done in waiting:
                    _settle(done, failed)
                raise
            for done in waiting:
                _settle(done)
            return len(audit) + len(found)

    def _queue_webhooks(self, conn: Any, found: list[dict[str, Any]]) -> None:
        banks = {row["bank"] for row in found}
        hooks = conn.execute(select(webhooks.c.id, webhooks.c.bank).where(webhooks.c.bank.in_(banks))).all()
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
        conn.execute(insert(webhook_deliveries), deliveries)
