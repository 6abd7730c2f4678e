"""Banks and entries: read for curators/admins (scoped keys see their banks only), written by curators.
Adding content by upload stores only its fingerprints. The change feed and export live here too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hashbank.service.app import Service, service_of
from hashbank.service.auth import check_bank, require
from hashbank.service.keys import Principal
from hashbank.service.routers.matching import UPLOAD_DOC, hash_upload
from hashbank.store import NewEntry

router = APIRouter(prefix="/v1", tags=["banks"])
ServiceDep = Annotated[Service, Depends(service_of)]
Reader = Annotated[Principal, require("banks.read")]
Writer = Annotated[Principal, require("banks.write")]


class BankIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    taxonomy: str = "vics"
    thresholds: dict[str, int] | None = None
    categories: dict[str, str] | None = None


class BankPatch(BaseModel):
    description: str | None = None
    thresholds: dict[str, int] | None = None
    categories: dict[str, str] | None = None
    enabled: bool | None = None
    name: str | None = Field(default=None, description="Rename the bank.")


class EntryIn(BaseModel):
    signal: str
    value: str
    category: str | None = None
    source: str | None = None
    external_id: str | None = None
    tags: list[str] = []
    note: str | None = None
    content_id: str | None = None


class EntriesIn(BaseModel):
    entries: list[EntryIn] = Field(max_length=1000)


class EntryPatch(BaseModel):
    category: str | None = None
    enabled: bool | None = None
    note: str | None = None
    tags: list[str] | None = None


def bank_json(bank: Any) -> dict[str, Any]:
    return {"name": bank.name, "description": bank.description, "taxonomy": bank.taxonomy,
            "enabled": bank.enabled, "thresholds": bank.thresholds, "categories": bank.categories,
            "created_at": bank.created_at.isoformat()}


@router.get("/banks")
def list_banks(service: ServiceDep, principal: Reader) -> dict[str, Any]:
    """Banks this key may see."""
    return {"banks": [bank_json(b) for b in service.store.list_banks() if principal.may_use_bank(b.name)]}


@router.post("/banks", status_code=201)
def create_bank(body: BankIn, service: ServiceDep, principal: Writer) -> dict[str, Any]:
    """A new bank (a bank-scoped key may create only the banks in its scope)."""
    check_bank(principal, body.name)
    bank = service.store.create_bank(body.name, description=body.description, taxonomy=body.taxonomy,
                                     thresholds=body.thresholds, categories=body.categories)
    service.records.audit(principal, "bank.create", bank=bank.name)
    return bank_json(bank)


@router.get("/banks/{bank}")
def get_bank(bank: str, service: ServiceDep, principal: Reader) -> dict[str, Any]:
    """A bank with its counts."""
    return {**bank_json(service.store.get_bank(bank)), "stats": service.store.stats(bank)}


@router.patch("/banks/{bank}")
def update_bank(bank: str, body: BankPatch, service: ServiceDep, principal: Writer) -> dict[str, Any]:
    """Change description, thresholds, categories, enabled; or rename."""
    store = service.store
    result = store.update_bank(bank, description=body.description, thresholds=body.thresholds,
                               categories=body.categories)
    if body.enabled is not None:
        result = store.set_bank_enabled(bank, body.enabled)
    if body.name and body.name != bank:
        check_bank(principal, body.name)
        result = store.rename_bank(bank, body.name)
    service.records.audit(principal, "bank.update", bank=bank, detail=body.model_dump(exclude_none=True))
    return bank_json(result)


@router.delete("/banks/{bank}")
def delete_bank(bank: str, service: ServiceDep, principal: Writer) -> dict[str, Any]:
    """Delete a bank; its entries leave tombstones in the change feed."""
    count = service.store.delete_bank(bank)
    service.records.audit(principal, "bank.delete", bank=bank, detail={"entries": count})
    return {"deleted": bank, "entries": count}


@router.get("/banks/{bank}/entries")
def list_entries(
    bank: str,
    service: ServiceDep,
    principal: Reader,
    after: Annotated[int, Query(ge=0, description="Entries with id above this (page with the last id).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A page of a bank's entries in id order."""
    rows = (e for e in service.store.entries(bank, page=max(limit, 1000)) if e.id > after)
    return {"entries": [e.to_json() for e in islice(rows, limit)]}


@router.post("/banks/{bank}/entries")
def add_entries(bank: str, body: EntriesIn, service: ServiceDep, principal: Writer) -> dict[str, Any]:
    """Add up to 1,000 entries; existing ones are left as they are, invalid ones are reported by position."""
    new = [NewEntry(**{**e.model_dump(), "tags": tuple(e.tags)}) for e in body.entries]
    result = service.store.add_entries(bank, new, added_by=f"key:{principal.key_id}")
    service.records.audit(principal, "entries.add", bank=bank,
                          detail={"added": result.added, "existing": result.existing, "errors": len(result.errors)})
    return {"added": result.added, "existing": result.existing,
            "errors": [{"position": p, "error": reason} for p, reason in result.errors]}


@router.patch("/banks/{bank}/entries/{entry_id}")
def update_entry(bank: str, entry_id: int, body: EntryPatch, service: ServiceDep, principal: Writer) -> dict:
    """Regrade, annotate, enable or disable one entry."""
    changes = body.model_dump(exclude_none=True)
    if "tags" in changes:
        changes["tags"] = tuple(changes["tags"])
    count = service.store.update_entries(bank, [entry_id], **changes)
    if not count:
        raise HTTPException(404, f"no entry {entry_id} in bank {bank!r} (or nothing to change)")
    service.records.audit(principal, "entry.update", bank=bank, target=str(entry_id), detail=body.model_dump(
        exclude_none=True))
    return {"updated": count}


@router.delete("/banks/{bank}/entries/{entry_id}")
def delete_entry(bank: str, entry_id: int, service: ServiceDep, principal: Writer) -> dict[str, Any]:
    """Delete one entry (a tombstone goes into the change feed)."""
    count = service.store.delete_entries(bank, [entry_id])
    if not count:
        raise HTTPException(404, f"no entry {entry_id} in bank {bank!r}")
    service.records.audit(principal, "entry.delete", bank=bank, target=str(entry_id))
    return {"deleted": count}


@router.post("/banks/{bank}/content", openapi_extra=UPLOAD_DOC)
async def add_content(
    bank: str,
    request: Request,
    service: ServiceDep,
    principal: Writer,
    category: Annotated[str | None, Query()] = None,
    source: Annotated[str | None, Query()] = None,
    external_id: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Hash an uploaded file and add its fingerprints (never the file) to the bank, grouped by its SHA-256."""
    service.store.get_bank(bank)
    result = await hash_upload(request, service, None, False)
    content_id = result.signals.get("sha256")
    new = [NewEntry(signal=name, value=value, category=category, source=source, external_id=external_id,
                    content_id=content_id) for name, value in result.signals.items()]
    added = await run_in_threadpool(service.store.add_entries, bank, new, added_by=f"key:{principal.key_id}")
    if added.errors:
        raise HTTPException(400, "; ".join(reason for _, reason in added.errors))
    await service.records.audit_async(principal, "content.add", bank=bank, target=content_id,
                                      detail={"added": added.added})
    return {"content_id": content_id, "signals": result.signals, "quality": result.quality,
            "added": added.added, "existing": added.existing}


@router.get("/changes")
def changes(
    service: ServiceDep,
    principal: Reader,
    since: Annotated[int, Query(ge=0, description="Changes after this sequence number.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    bank: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The change feed: adds, updates and tombstones in order; page with ``next`` as the next ``since``."""
    if bank is not None:
        check_bank(principal, bank)
    rows = service.store.changes(since=since, limit=limit, bank=bank)
    nxt = rows[-1].seq if rows else since
    visible = [c.to_json() for c in rows if principal.may_use_bank(c.bank)]
    return {"changes": visible, "next": nxt, "last_seq": service.store.last_seq()}


@router.get("/banks/{bank}/export")
def export(bank: str, service: ServiceDep, principal: Reader) -> StreamingResponse:
    """Every entry of the bank as JSON Lines (streamed)."""
    service.store.get_bank(bank)
    service.records.audit(principal, "bank.export", bank=bank)

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", bank)

    def lines() -> Iterator[bytes]:
        for entry in service.store.entries(bank):
            yield (json.dumps(entry.to_json()) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"content-disposition": f'attachment; filename="{safe}.jsonl"'})
