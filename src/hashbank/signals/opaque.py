"""Fingerprints hashbank keeps and matches but cannot compute (PhotoDNA): opaque text, exact match.

They arrive in partners' lists (VICS, ICSE). The value is kept as written, trimmed; only an
identical value matches. ``computable = False`` keeps them out of the default signal set.
"""

from __future__ import annotations

from typing import ClassVar

from hashbank.media import MediaError
from hashbank.signals.base import Computed, Content, SignalType
from hashbank.signals.registry import register


class OpaqueSignal(SignalType):
    """A value compared for equality only; never computed here."""

    computable: ClassVar[bool] = False
    #: Longer than any real fingerprint's text form (PhotoDNA as 144 decimals is ~600 chars).
    max_length: ClassVar[int] = 4096

    def compute(self, content: Content, *, dihedral: bool = False) -> Computed:
        raise MediaError(f"hashbank cannot compute {self.name}; it only stores and matches given values")

    def parse(self, text: str) -> str:
        value = text.strip()
        if not value:
            raise ValueError(f"{self.name} value is empty")
        if len(value) > self.max_length:
            raise ValueError(f"{self.name} value is {len(value)} characters, over {self.max_length}")
        if not value.isprintable() or any(ch.isspace() for ch in value):
            raise ValueError(f"{self.name} value has spaces or control characters")
        return value


@register
class PhotoDnaSignal(OpaqueSignal):
    """Microsoft PhotoDNA, in whatever text form the list uses (base64, hex or comma-separated)."""

    name = "photodna"
