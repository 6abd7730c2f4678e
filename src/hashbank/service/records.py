"""Audit log and match log: rows buffered in memory and written in batches, so a match costs no
database round trip. Rows say who, what and when — fingerprints and ids, never media."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from hashbank.service.keys import Principal
from hashbank.service.tables import audit_log, match_log, webhook_deliveries, webhooks


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Recorder:
    """Buffers audit and match-log rows; ``flush`` writes them (called on a timer and at shutdown).
    Matches in banks with webhooks also queue one signed delivery per webhook."""

    def __init__(self, engine: Engine, on_flush: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self._audit: list[dict[str, Any]] = []
        self._matches: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.on_flush = on_flush

    def audit(
        self,
        who: Principal | str,
        action: str,
        *,
        bank: str | None = None,
        target: str | None = None,
        status: int = 200,
        detail: dict[str, Any] | None = None,
    ) -> None:
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
        with self._lock:
            self._audit.append(row)

    def matched(self, who: Principal, matches: list[dict[str, Any]]) -> None:
        """Log each match (the review queue is the match log's open rows)."""
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

    def flush(self) -> int:
        """Write what is buffered; returns how many rows. Keeps rows if the write fails."""
        with self._flushing:
            with self._lock:
                audit, self._audit = self._audit, []
                found, self._matches = self._matches, []
            if not audit and not found:
                return 0
            try:
                with self.engine.begin() as conn:
                    if audit:
                        conn.execute(insert(audit_log), audit)
                    if found:
                        conn.execute(insert(match_log), found)
                        self._queue_webhooks(conn, found)
            except Exception:
                with self._lock:
                    self._audit[:0], self._matches[:0] = audit, found
                raise
            if self.on_flush:
                self.on_flush(len(audit) + len(found))
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
