"""Walk a large JSON document without loading it: small values are decoded whole, and the
arrays the caller names are streamed item by item, each with the line it starts on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"
#: Characters a JSON value can start with.
_STARTS = frozenset('{["-0123456789tfnNI')


class JsonError(ValueError):
    """Broken or oversized JSON: the document cannot be followed past this line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


class JsonStream:
    """A cursor over JSON text read in chunks; one value at a time is held in memory."""

    def __init__(self, stream: TextIO, *, chunk: int = 1 << 20, max_value: int = 16 << 20) -> None:
        self.stream, self.chunk, self.max_value = stream, chunk, max_value
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(self.chunk)
        self.eof = not data
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return not self.eof

    def _advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next non-space character ('' at the end), without consuming it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _SPACE:
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, chars: str) -> str:
        ch = self.peek()
        if not ch or ch not in chars:
            found = repr(ch) if ch else "end of file"
            raise JsonError(self.line, f"broken JSON: expected {' or '.join(map(repr, chars))}, found {found}")
        self._advance(self.pos + 1)
        return ch

    def value(self) -> Any:
        """Decode the next whole value, reading more text until it is complete."""
        first = self.peek()
        if first and first not in _STARTS:  # no point reading on: nothing can make this valid
            raise JsonError(self.line, f"broken JSON: unexpected character {first!r}")
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > self.max_value:
                    raise JsonError(self.line, f"JSON value over {self.max_value} bytes") from None
                if self._more():
                    continue
                raise JsonError(
                    exc.lineno - self.buf.count("\n", 0, self.pos) + self.line - 1, f"broken JSON: {exc.msg}"
                ) from None
            # A number at the very end of a chunk may go on in the next one.
            if end == len(self.buf) and not self.eof and self._more():
                continue
            self._advance(end)
            return value

    def items(self) -> Iterator[int]:
        """Inside an array just opened: yields each item's line, positioned at the item."""
        if self.peek() == "]":
            self._advance(self.pos + 1)
            return
        while True:
            self.peek()
            yield self.line
            if self.expect(",]") == "]":
                return

    def members(self) -> Iterator[str]:
        """Inside an object just opened: yields each key, positioned at its value."""
        if self.peek() == "}":
            self._advance(self.pos + 1)
            return
        while True:
            if self.peek() != '"':
                raise JsonError(self.line, "broken JSON: expected a key")
            key = self.value()
            self.expect(":")
            yield key
            if self.expect(",}") == "}":
                return
