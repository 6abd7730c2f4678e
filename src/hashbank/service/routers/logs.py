"""The audit log (auditors), the match log, and the review queue built on it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select, update

from hashbank.service.app import Service, service_of
from hashbank.service.auth import check_bank, require
from hashbank.service.keys import Principal
from hashbank.service.records import now
from hashbank.service.tables import audit_log, match_log

router = APIRouter(prefix="/v1", tags=["logs"])
ServiceDep = Annotated[Service, Depends(service_of)]


def rows_json(rows: Any) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]


@router.get("/audit")
def read_audit(
    service: ServiceDep,
    principal: Annotated[Principal, require("audit.read")],
    after: Annotated[int, Query(ge=0, description="Rows with id above this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Who did what, when: every write and every match (this worker's latest rows are flushed first)."""
    service.records.flush()
    query = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    if action:
        query = query.where(audit_log.c.action == action)
    with service.store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {"rows": rows_json(rows)}


def _matches(service: Service, principal: Principal, review: str | None, after: int, limit: int,
             bank: str | None) -> list[dict[str, Any]]:
    service.records.flush()
    query = select(match_log).where(match_log.c.id > after).order_by(match_log.c.id).limit(limit)
    if review:
        query = query.where(match_log.c.review == review)
    if bank:
        check_bank(principal, bank)
        query = query.where(match_log.c.bank == bank)
    elif principal.banks is not None:
        query = query.where(match_log.c.bank.in_(sorted(principal.banks)))
    with service.store.engine.connect() as conn:
        return rows_json(conn.execute(query).mappings().all())


@router.get("/matches")
def read_matches(
    service: ServiceDep,
    principal: Annotated[Principal, require("review")],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    bank: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The match log: every match with its review state."""
    return {"matches": _matches(service, principal, None, after, limit, bank)}


@router.get("/review")
def review_queue(
    service: ServiceDep,
    principal: Annotated[Principal, require("review")],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    bank: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Matches waiting for a reviewer's verdict."""
    return {"matches": _matches(service, principal, "open", after, limit, bank)}


class Verdict(BaseModel):
    verdict: Literal["confirmed", "false_positive"]
    disable_entry: bool = False
    note: str | None = None


@router.post("/review/{match_id}")
def review(
    match_id: int, body: Verdict, service: ServiceDep, principal: Annotated[Principal, require("review")]
) -> dict[str, Any]:
    """Mark a match confirmed or a false positive; a false positive may disable the entry on this instance."""
    service.records.flush()
    with service.store.engine.connect() as conn:
        row = conn.execute(select(match_log).where(match_log.c.id == match_id)).one_or_none()
    if row is None:
        raise HTTPException(404, f"no match {match_id} in the match log")
    check_bank(principal, row.bank)
    if body.disable_entry and body.verdict != "false_positive":
        raise HTTPException(400, "only a false positive can disable its entry")
    with service.store.engine.begin() as conn:
        conn.execute(update(match_log).where(match_log.c.id == match_id).values(
            review=body.verdict, reviewed_by=principal.key_id, reviewed_at=now(), note=body.note))
    disabled = 0
    if body.disable_entry:
        disabled = service.store.update_entries(row.bank, [row.entry_id], enabled=False)
    service.records.audit(principal, "review", bank=row.bank, target=str(match_id),
                          detail={"verdict": body.verdict, "entry_disabled": bool(disabled)})
    return {"id": match_id, "review": body.verdict, "entry_disabled": bool(disabled)}
