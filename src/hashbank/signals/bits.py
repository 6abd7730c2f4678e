"""Bit-level helpers shared by the binary perceptual hashes.

Hashes are held as big-endian bytes, the same order as their hex text: bit k
of the hash (PDQ's coefficient k) is worth 2**k in the 256-bit integer the
hex spells, so it lives in byte ``31 - k // 8``.
"""

from __future__ import annotations

import numpy as np


def pack_bits(bits: np.ndarray) -> bytes:
    """Booleans in bit order (bit 0 first) to big-endian bytes."""
    return np.packbits(bits[::-1]).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equal-length byte strings."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
