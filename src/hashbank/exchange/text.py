"""Reading partner files safely: bounded lines (a 2 GB line never sits in memory), BOM, UTF-8,
and the small value conventions lists use (string booleans, hash names)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from hashbank import signals

#: Longest line accepted; longer ones are skipped (read through in chunks) and reported.
MAX_LINE = 1 << 20


def read_lines(stream: BinaryIO, max_line: int = MAX_LINE) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text with its line ending, problem or None) for each line of the stream."""
    number = 0
    while raw := stream.readline(max_line + 1):
        number += 1
        if len(raw) > max_line and not raw.endswith(b"\n"):
            size = len(raw)
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(max_line)
                size += len(raw)
            yield number, "\n", f"line is {size} bytes, over the {max_line}-byte limit"
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text, problem = raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            text, problem = "\n", f"not UTF-8 text (byte {exc.start + 1})"
        yield number, text, problem


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def parse_bool(value: object) -> bool:
    """JSON or string booleans as partner tools write them ('True', 'false', 1, '')."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a true/false value: {value!r}")


def signal_name(label: str) -> str:
    """'SHA-1', 'PhotoDNA', 'sha_256' -> the registered signal name; ValueError when unknown."""
    key = "".join(ch for ch in label.lower() if ch.isalnum())
    signals.get(key)
    return key
