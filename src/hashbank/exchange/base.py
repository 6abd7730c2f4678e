"""What an exchange format is: a reader of (line, entry-or-reason) and a writer of entries."""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, TextIO, TypeVar

from hashbank.store import Entry, NewEntry

#: A reader yields, per item, its line number and either the entry or why the line was refused.
Item = tuple[int, NewEntry | str]


@dataclass(frozen=True)
class ReadOptions:
    """What a file may leave out: the signal of bare values, a default category, the source."""

    signal: str | None = None
    category: str | None = None
    source: str | None = None


class Format(ABC):
    """One exchange format; subclasses register themselves with @register."""

    name: ClassVar[str]
    description: ClassVar[str]

    def read(self, stream: BinaryIO, options: ReadOptions) -> Iterator[Item]:
        """Entries from a binary stream, never holding more than one item (or line) in memory."""
        raise NotImplementedError(f"{self.name} cannot be imported")

    def write(self, entries: Iterable[Entry], out: TextIO) -> int:
        """Write entries; returns how many were written."""
        raise NotImplementedError(f"{self.name} cannot be exported")

    @property
    def can_read(self) -> bool:
        return type(self).read is not Format.read

    @property
    def can_write(self) -> bool:
        return type(self).write is not Format.write


_FORMATS: dict[str, Format] = {}
F = TypeVar("F", bound=type[Format])


def register(cls: F) -> F:
    """Class decorator: make the format known by its name."""
    _FORMATS[cls.name] = cls()
    return cls


def get_format(name: str) -> Format:
    """The format called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r} (known: {', '.join(sorted(_FORMATS))})") from None


def format_names() -> list[str]:
    return sorted(_FORMATS)
