"""What the store hands out and takes in: plain frozen records, no database session attached."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from hashbank.store.categories import CategoryChecker


class NotFound(KeyError):
    """A bank or entry that does not exist; str() is the message, not KeyError's repr."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(ValueError):
    """A bank name that is taken."""


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    description: str
    taxonomy: str
    enabled: bool
    thresholds: dict[str, int]
    categories: dict[str, str]
    created_at: datetime

    @cached_property
    def check_category(self) -> CategoryChecker:
        """Normaliser for this bank's category codes (raises ValueError on an unknown one)."""
        return CategoryChecker(self.taxonomy, self.categories)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to add; ``content_id`` groups the signals of one piece of content
    (any key the caller chooses, e.g. the file's SHA-256 or a VICS MediaID)."""

    signal: str
    value: str
    category: str | None = None
    source: str | None = None
    external_id: str | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None
    content_id: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    bank: str
    signal: str
    value: str
    category: str | None
    source: str | None
    external_id: str | None
    content_id: str | None
    tags: tuple[str, ...]
    note: str | None
    added_at: datetime
    added_by: str
    enabled: bool
    disabled_until: datetime | None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change feed; ``enabled`` is False when the entry or its bank is disabled."""

    seq: int
    op: str
    entry_id: int
    bank: str
    signal: str
    value: str
    category: str | None
    enabled: bool
    bank_id: int = 0
    at: datetime | None = None
    source: str | None = None
    external_id: str | None = None
    content_id: str | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None
    added_at: datetime | None = None
    added_by: str | None = None
    disabled_until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass
class AddResult:
    """Outcome of add_entries: how many were new, already there, or refused (position, reason)."""

    added: int = 0
    existing: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _jsonable(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in record.__dataclass_fields__:
        value = getattr(record, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out
