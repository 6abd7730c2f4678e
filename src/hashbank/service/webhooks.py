"""Webhook delivery: HMAC-SHA256 signed POSTs, retried with exponential backoff, then dead-lettered.

No signing secret is stored: each webhook's secret is HMAC(instance key, its random salt), shown
once when it is created. The instance key comes from HASHBANK_SECRET_KEY or a 0600 file in the
data folder (set the variable when workers run on several hosts).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

import httpx
from anyio import to_thread
from sqlalchemy import Engine, and_, select, update

from hashbank.service.records import now
from hashbank.service.tables import webhook_deliveries, webhooks
from hashbank.settings import data_dir

log = logging.getLogger("hashbank.service.webhooks")
SIGNATURE_HEADER = "X-Hashbank-Signature"


def instance_key() -> bytes:
    """The key webhook secrets derive from (created on first use, readable by the owner only)."""
    env = os.environ.get("HASHBANK_SECRET_KEY")
    if env:
        return env.encode()
    path = Path(data_dir()) / "service-secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def secret_for(salt: str) -> str:
    return hmac.new(instance_key(), f"webhook:{salt}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The signature header value a receiver recomputes: ``sha256=<hex HMAC of the raw body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


class Dispatcher:
    """Claims due deliveries from the database (so any worker may send any) and sends them."""

    def __init__(self, engine: Engine, *, poll: float, timeout: float, attempts: int, backoff: float) -> None:
        self.engine, self.poll, self.timeout, self.attempts, self.backoff = engine, poll, timeout, attempts, backoff
        self.sent = self.failed = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                try:
                    due = await to_thread.run_sync(self._claim)
                    await asyncio.gather(*(self._send(client, *job) for job in due))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a database hiccup must not end deliveries
                    log.warning("webhook dispatch failed: %s", exc)
                await asyncio.sleep(self.poll)

    def _claim(self) -> list[tuple[int, int, str, str, str]]:
        """Due deliveries leased to this worker: (id, attempts, url, salt, body)."""
        at = now()
        lease = at + timedelta(seconds=self.timeout * 2 + 5)
        due = and_(webhook_deliveries.c.status.in_(("pending", "sending")), webhook_deliveries.c.next_attempt_at <= at)
        query = (
            select(webhook_deliveries.c.id, webhook_deliveries.c.attempts, webhooks.c.url, webhooks.c.salt,
                   webhook_deliveries.c.body)
            .join_from(webhook_deliveries, webhooks, webhook_deliveries.c.webhook_id == webhooks.c.id)
            .where(due)
            .order_by(webhook_deliveries.c.id)
            .limit(50)
        )
        claimed = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).all():
                won = conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id == row.id, due)
                    .values(status="sending", next_attempt_at=lease)
                ).rowcount
                if won:
                    claimed.append(tuple(row))
        return claimed

    async def _send(self, client: httpx.AsyncClient, delivery: int, attempts: int, url: str, salt: str,
                    body: str) -> None:
        raw = body.encode()
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret_for(salt), raw),
                   "X-Hashbank-Delivery": str(delivery)}
        error = None
        try:
            response = await client.post(url, content=raw, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"receiver answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        await to_thread.run_sync(self._settle, delivery, attempts + 1, error)

    def _settle(self, delivery: int, attempts: int, error: str | None) -> None:
        at = now()
        if error is None:
            values = {"status": "delivered", "attempts": attempts, "delivered_at": at, "last_error": None}
            self.sent += 1
        elif attempts >= self.attempts:
            values = {"status": "dead", "attempts": attempts, "last_error": error}
            self.failed += 1
        else:
            retry = at + timedelta(seconds=self.backoff * 2 ** (attempts - 1))
            values = {"status": "pending", "attempts": attempts, "last_error": error, "next_attempt_at": retry}
        with self.engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery).values(**values))
