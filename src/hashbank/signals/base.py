"""What every signal type is: compute, parse, format and compare itself."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

from hashbank.media import LumaImage, MediaLimits, decode_luma


class Content:
    """One file's bytes, read once, decoded at most once, never kept."""

    def __init__(self, data: bytes, limits: MediaLimits | None = None) -> None:
        self.data = data
        self.limits = limits or MediaLimits()

    @cached_property
    def image(self) -> LumaImage:
        """The decoded luma image; raises MediaError if the bytes are not one."""
        return decode_luma(self.data, self.limits)


@dataclass(slots=True)
class Computed:
    """A signal's value for one piece of content, with what comes with it."""

    value: str
    quality: int | None = None
    variants: list[str] = field(default_factory=list)


class SignalType(ABC):
    """A kind of fingerprint, named as ThreatExchange names it.

    Values travel as normalised text (lowercase hex for every hash here);
    ``parse`` raises ValueError with a reason a person can act on.
    """

    name: ClassVar[str]
    #: Largest distance that still counts as a match when a bank sets none.
    default_threshold: ClassVar[int] = 0
    #: True when the signal needs decoded pixels rather than raw bytes.
    needs_pixels: ClassVar[bool] = False
    #: False for fingerprints hashbank only stores and matches (PhotoDNA...).
    computable: ClassVar[bool] = True

    @abstractmethod
    def compute(self, content: Content, *, dihedral: bool = False) -> Computed:
        """Fingerprint content (raises MediaError when it cannot)."""

    @abstractmethod
    def parse(self, text: str) -> str:
        """Validate and normalise a value written by a person or a partner."""

    def format(self, value: str) -> str:
        """Text form of a stored value (already normalised)."""
        return value

    def distance(self, a: str, b: str) -> int:
        """0 when equal; exact signals know nothing in between."""
        return 0 if a == b else 1


class HexDigestSignal(SignalType):
    """A fixed-length hex digest compared for equality."""

    hex_length: ClassVar[int]

    def parse(self, text: str) -> str:
        value = text.strip().lower()
        if len(value) != self.hex_length:
            raise ValueError(f"{self.name} must be {self.hex_length} hex characters, got {len(value)}")
        if not _HEX.fullmatch(value):
            raise ValueError(f"{self.name} must be hexadecimal")
        return value


_HEX = re.compile(r"[0-9a-f]*")
