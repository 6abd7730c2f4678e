"""Import a file into a bank and export a bank, in any registered format.

Invalid items are reported (line and reason) through ``on_error`` as they are met and
never stop the rest; valid ones go to Store.add_entries in committed batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, TextIO

from hashbank.exchange.base import ReadOptions, get_format
from hashbank.store import NewEntry, Store
from hashbank.store.api import BATCH


@dataclass
class ImportResult:
    """Counts of an import; ``errors`` keeps the first ``MAX_KEPT`` (line, reason) pairs."""

    added: int = 0
    existing: int = 0
    error_count: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    MAX_KEPT = 1000


def import_stream(
    store: Store,
    bank: str,
    stream: BinaryIO,
    fmt: str,
    *,
    options: ReadOptions | None = None,
    on_error: Callable[[int, str], None] | None = None,
    added_by: str = "import",
    batch_size: int = BATCH,
) -> ImportResult:
    """Read ``stream`` as format ``fmt`` into ``bank``; re-importing adds nothing."""
    reader = get_format(fmt)
    target = store.get_bank(bank)
    if options and options.category is not None:
        options = replace(options, category=target.check_category(options.category))
    result = ImportResult()

    def refuse(line: int, reason: str) -> None:
        result.error_count += 1
        if len(result.errors) < result.MAX_KEPT:
            result.errors.append((line, reason))
        if on_error:
            on_error(line, reason)

    def valid() -> Iterator[NewEntry]:
        check = target.check_category
        for line, item in reader.read(stream, options or ReadOptions()):
            if isinstance(item, str):
                refuse(line, item)
                continue
            if item.category is not None:
                try:
                    category = check(item.category)
                except ValueError as exc:
                    refuse(line, str(exc))
                    continue
                if category != item.category:
                    item = replace(item, category=category)
            yield item

    added = store.add_entries(bank, valid(), added_by=added_by, batch_size=batch_size)
    for _position, reason in added.errors:  # not expected: the readers validate first
        refuse(0, reason)
    result.added, result.existing = added.added, added.existing
    return result


def import_file(
    store: Store,
    bank: str,
    path: str | os.PathLike[str],
    fmt: str,
    *,
    options: ReadOptions | None = None,
    on_error: Callable[[int, str], None] | None = None,
    added_by: str = "import",
    batch_size: int = BATCH,
) -> ImportResult:
    """import_stream on a file; the source defaults to the file's name."""
    options = options or ReadOptions()
    if options.source is None:
        options = replace(options, source=os.path.basename(os.fspath(path)))
    # A 1 MiB buffer: with the default 8 KiB one, skipping an over-long line reads it in tiny pieces.
    with open(path, "rb", buffering=1 << 20) as stream:
        return import_stream(
            store, bank, stream, fmt, options=options, on_error=on_error, added_by=added_by, batch_size=batch_size
        )


def export_bank(store: Store, bank: str, out: TextIO, fmt: str, *, since: int = 0) -> int:
    """Write a bank's entries (only those changed after change-log cursor ``since``); returns the count."""
    writer = get_format(fmt)
    if not writer.can_write:
        raise ValueError(f"format {fmt!r} can be imported but not exported")
    return writer.write(store.entries(bank, since=since), out)
