"""ThreatExchange line format: '<signal_type> <value>' per line, or bare values.

Bare values take --signal, else their length says: 32 hex md5, 40 sha1, 64 pdq (as in
ThreatExchange hash lists; use --signal sha256 for SHA-256 lists). '#' starts a comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from hashbank import signals
from hashbank.exchange.base import Format, Item, ReadOptions, register
from hashbank.exchange.text import read_lines
from hashbank.store import Entry, NewEntry

_BY_LENGTH = {32: "md5", 40: "sha1", 64: "pdq"}


@register
class ThreatExchangeLines(Format):
    name = "te"
    description = "ThreatExchange lines: '<signal_type> <value>' or bare values"

    def read(self, stream: BinaryIO, options: ReadOptions) -> Iterator[Item]:
        category, source = options.category, options.source
        for number, text, problem in read_lines(stream):
            if problem:
                yield number, problem
                continue
            parts = text.split(None, 1)
            if not parts or parts[0].startswith("#"):
                continue
            try:
                if len(parts) == 2:
                    name, value = parts
                else:
                    value = parts[0]
                    name = options.signal or _BY_LENGTH.get(len(value))
                    if name is None:
                        raise ValueError(f"cannot tell the signal type of a bare {len(value)}-character value")
                signal = signals.get(name)
                yield number, NewEntry(signal.name, signal.parse(value), category=category, source=source)
            except ValueError as exc:
                yield number, str(exc)

    def write(self, entries: Iterable[Entry], out: TextIO) -> int:
        count = 0
        for entry in entries:
            out.write(f"{entry.signal} {entry.value}\n")
            count += 1
        return count
