"""Webhooks per bank, and their dead-letter list (read and replay)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import insert, select, update

from hashbank.service.app import Service, service_of
from hashbank.service.auth import require
from hashbank.service.keys import Principal
from hashbank.service.records import now
from hashbank.service.routers.logs import rows_json
from hashbank.service.tables import webhook_deliveries, webhooks
from hashbank.service.webhooks import SIGNATURE_HEADER, secret_for

router = APIRouter(prefix="/v1/banks/{bank}/webhooks", tags=["webhooks"])
ServiceDep = Annotated[Service, Depends(service_of)]
Manager = Annotated[Principal, require("webhooks")]


class WebhookIn(BaseModel):
    url: str


@router.post("", status_code=201)
def create_webhook(bank: str, body: WebhookIn, service: ServiceDep, principal: Manager) -> dict[str, Any]:
    """Call ``url`` on every match in this bank. The signing secret is shown once, here."""
    service.store.get_bank(bank)
    parts = urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPException(400, f"webhook url must be http(s)://host/..., got {body.url!r}")
    salt = secrets.token_hex(16)
    with service.store.engine.begin() as conn:
        hook_id = conn.execute(insert(webhooks).values(
            bank=bank, url=body.url, salt=salt, created_at=now(), created_by=principal.key_id)).inserted_primary_key[0]
    service.records.audit(principal, "webhook.create", bank=bank, target=str(hook_id), detail={"url": body.url})
    return {"id": hook_id, "bank": bank, "url": body.url, "secret": secret_for(salt),
            "signature_header": SIGNATURE_HEADER, "signature": "sha256=HMAC-SHA256(secret, raw body) in hex"}


@router.get("")
def list_webhooks(bank: str, service: ServiceDep, principal: Manager) -> dict[str, Any]:
    query = select(webhooks.c.id, webhooks.c.url, webhooks.c.created_at, webhooks.c.created_by).where(
        webhooks.c.bank == bank)
    with service.store.engine.connect() as conn:
        return {"webhooks": rows_json(conn.execute(query).mappings().all())}


def _hook(service: Service, bank: str, hook_id: int) -> None:
    with service.store.engine.connect() as conn:
        found = conn.execute(select(webhooks.c.id).where(webhooks.c.id == hook_id, webhooks.c.bank == bank)).first()
    if not found:
        raise HTTPException(404, f"no webhook {hook_id} on bank {bank!r}")


@router.delete("/{hook_id}")
def delete_webhook(bank: str, hook_id: int, service: ServiceDep, principal: Manager) -> dict[str, Any]:
    _hook(service, bank, hook_id)
    with service.store.engine.begin() as conn:
        conn.execute(webhooks.delete().where(webhooks.c.id == hook_id))
        conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == hook_id))
    service.records.audit(principal, "webhook.delete", bank=bank, target=str(hook_id))
    return {"deleted": hook_id}


@router.get("/{hook_id}/deliveries")
def deliveries(
    bank: str,
    hook_id: int,
    service: ServiceDep,
    principal: Manager,
    status: Annotated[str | None, Query(description="pending, sending, delivered or dead (the dead letters)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Deliveries of this webhook, newest first; ``status=dead`` is the dead-letter list."""
    _hook(service, bank, hook_id)
    service.records.flush()
    query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == hook_id)
    if status:
        query = query.where(webhook_deliveries.c.status == status)
    with service.store.engine.connect() as conn:
        rows = conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit)).mappings().all()
    return {"deliveries": rows_json(rows)}


@router.post("/{hook_id}/deliveries/{delivery_id}/replay")
def replay(bank: str, hook_id: int, delivery_id: int, service: ServiceDep, principal: Manager) -> dict[str, Any]:
    """Send a dead letter again (from attempt one)."""
    _hook(service, bank, hook_id)
    with service.store.engine.begin() as conn:
        done = conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.webhook_id == hook_id,
                   webhook_deliveries.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=now())
        ).rowcount
    if not done:
        raise HTTPException(404, f"no dead letter {delivery_id} on webhook {hook_id}")
    service.records.audit(principal, "webhook.replay", bank=bank, target=str(delivery_id))
    return {"replayed": delivery_id}
