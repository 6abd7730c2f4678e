"""Entries for a fingerprinted file: its signals grouped as one content item (keyed by SHA-256)."""

from __future__ import annotations

from hashbank import signals
from hashbank.signals.compute import HashResult
from hashbank.store.model import NewEntry


def entries_for(
    result: HashResult, *, category: str | None = None, source: str | None = None, note: str | None = None
) -> tuple[list[NewEntry], list[str]]:
    """The entries to store for one hashed file, and what was left out and why.

    A PDQ below its quality floor (flat or tiny images) is left out: the reference
    implementation advises against matching it, and it would match unrelated images.
    """
    content_id = result.sha256 or next(iter(result.signals.values()), None)
    kept: list[NewEntry] = []
    skipped: list[str] = []
    for name, value in result.signals.items():
        floor = getattr(signals.get(name), "quality_floor", None)
        quality = result.quality.get(name)
        if floor is not None and quality is not None and quality < floor:
            skipped.append(f"{name} quality {quality} is below {floor}")
            continue
        kept.append(NewEntry(name, value, category=category, source=source, note=note, content_id=content_id))
    return kept, skipped
