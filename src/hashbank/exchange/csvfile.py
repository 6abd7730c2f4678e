"""CSV with a header, in either shape partners use:

- long: one fingerprint per row, columns ``signal,value`` (+ category, source, external_id,
  content_id, tags, note, enabled); this is what export writes;
- wide: one piece of content per row, a column per signal (``md5``, ``sha1``, ``pdq``,
  ``photodna``...), plus the same optional columns.

Header names are matched loosely ('Hash Type', 'SHA-1', 'ExternalID'); tags are '|'-separated.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Iterator
from typing import BinaryIO, ClassVar, TextIO

from hashbank import signals
from hashbank.exchange.base import Format, Item, ReadOptions, register
from hashbank.exchange.text import parse_bool, read_lines, signal_name
from hashbank.store import Entry, NewEntry

COLUMNS = ["signal", "value", "category", "source", "external_id", "content_id", "tags", "note", "enabled"]
ALIASES = {
    "signaltype": "signal",
    "type": "signal",
    "hashtype": "signal",
    "hash": "value",
    "hashvalue": "value",
    "signalvalue": "value",
    "externalid": "external_id",
    "id": "external_id",
    "contentid": "content_id",
    "notes": "note",
    "comment": "note",
    "comments": "note",
    "grade": "category",
    "classification": "category",
}
#: Wide rows without an id are keyed by their strongest hash.
_KEY_ORDER = ("sha256", "sha1", "md5", "pdq", "photodna")


def _key(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


@register
class CsvFormat(Format):
    name = "csv"
    description = "CSV with a header: signal,value,category,... (or one column per signal)"
    delimiter: ClassVar[str] = ","
    aliases: ClassVar[dict[str, str]] = ALIASES

    def read(self, stream: BinaryIO, options: ReadOptions) -> Iterator[Item]:
        rows = _rows(stream, self.delimiter)
        header: dict[str, int] | None = None
        hash_columns: dict[str, int] = {}
        for number, cells in rows:
            if isinstance(cells, str):
                yield number, cells
                continue
            if header is None:
                header, hash_columns = self._header(cells)
                if "value" not in header and not hash_columns:
                    yield number, f"header has no 'value' column and no signal columns: {', '.join(cells)}"
                    return
                continue
            try:
                yield from ((number, e) for e in self._entries(cells, header, hash_columns, options))
            except ValueError as exc:
                yield number, str(exc)

    def _header(self, cells: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        header: dict[str, int] = {}
        hashes: dict[str, int] = {}
        for index, label in enumerate(cells):
            key = _key(label)
            name = self.aliases.get(key) or next((c for c in COLUMNS if _key(c) == key), None)
            if name:
                header.setdefault(name, index)
                continue
            with contextlib.suppress(ValueError):  # a column hashbank does not keep (size, date...)
                hashes.setdefault(signal_name(label), index)
        return header, hashes

    def _entries(
        self, cells: list[str], header: dict[str, int], hash_columns: dict[str, int], options: ReadOptions
    ) -> list[NewEntry]:
        def cell(name: str) -> str | None:
            index = header.get(name)
            text = cells[index].strip() if index is not None and index < len(cells) else ""
            return text or None

        if "value" in header:
            pairs = [(cell("signal") or options.signal or "", cell("value") or "")]
            if not pairs[0][0]:
                raise ValueError("no signal type (add a 'signal' column or use --signal)")
        else:
            pairs = [(name, cells[i]) for name, i in hash_columns.items() if i < len(cells) and cells[i].strip()]
            if not pairs:
                raise ValueError("row has no fingerprint")
        parsed = [(s.name, s.parse(v)) for s, v in ((signals.get(n), v) for n, v in pairs)]
        content_id = cell("content_id")
        if content_id is None and "value" not in header:  # a wide row is one piece of content
            content_id = cell("external_id") or (min(parsed, key=lambda p: _rank(p[0]))[1] if len(parsed) > 1 else None)
        common = {
            "category": cell("category") or options.category,
            "source": cell("source") or options.source,
            "external_id": cell("external_id"),
            "content_id": content_id,
            "tags": tuple(t.strip() for t in (cell("tags") or "").split("|") if t.strip()),
            "note": cell("note"),
            "enabled": parse_bool(cell("enabled") or "true"),
        }
        return [NewEntry(name, value, **common) for name, value in parsed]

    def write(self, entries: Iterable[Entry], out: TextIO) -> int:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        count = 0
        for e in entries:
            writer.writerow(
                [
                    e.signal,
                    e.value,
                    e.category,
                    e.source,
                    e.external_id,
                    e.content_id,
                    "|".join(e.tags),
                    e.note,
                    "true" if e.enabled else "false",
                ]
            )
            count += 1
        return count


def _rank(signal: str) -> int:
    return _KEY_ORDER.index(signal) if signal in _KEY_ORDER else len(_KEY_ORDER)


def _rows(stream: BinaryIO, delimiter: str) -> Iterator[tuple[int, list[str] | str]]:
    """(first line number, cells) per non-empty record, or (line, problem) for an unreadable line."""
    problems: dict[int, str] = {}

    def texts() -> Iterator[str]:
        for number, text, problem in read_lines(stream):
            if problem:
                problems[number] = problem
            yield text

    reader = csv.reader(texts(), delimiter=delimiter)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"CSV: {exc}"
            start = reader.line_num + 1
            continue
        if start in problems:
            yield start, problems.pop(start)
        elif any(c.strip() for c in cells):
            yield start, cells
        start = reader.line_num + 1
