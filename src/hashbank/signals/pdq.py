"""PDQ: Meta's 256-bit perceptual photo hash, compared by Hamming distance."""

from __future__ import annotations

from hashbank.signals.base import Computed, Content, HexDigestSignal
from hashbank.signals.bits import hamming
from hashbank.signals.pdq_core import pdq_hash
from hashbank.signals.registry import register


@register
class PdqSignal(HexDigestSignal):
    """Conformant with the reference; JPEGs hashed from a DCT-reduced decode."""

    name = "pdq"
    hex_length = 64
    default_threshold = 31
    needs_pixels = True
    #: Below this quality the reference advises not to match (flat images).
    quality_floor = 50

    def compute(self, content: Content, *, dihedral: bool = False) -> Computed:
        img = content.image
        value, quality, variants = pdq_hash(img.luma, img.height, img.width, img.scale, with_dihedral=dihedral)
        return Computed(value.hex(), quality, [v.hex() for v in variants])

    def distance(self, a: str, b: str) -> int:
        return hamming(bytes.fromhex(a), bytes.fromhex(b))
