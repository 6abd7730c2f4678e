"""Limits that keep one hostile file from exhausting a worker."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else default


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """Byte and pixel caps checked before decoding; generous for real photos.

    The pixel default admits 200-megapixel phone photos and refuses the
    30000x30000 kind of bomb; both are overridable per call or by
    HASHBANK_MAX_PIXELS / HASHBANK_MAX_BYTES.
    """

    max_bytes: int = _env_int("HASHBANK_MAX_BYTES", 256 * 1024 * 1024)
    max_pixels: int = _env_int("HASHBANK_MAX_PIXELS", 250_000_000)
    #: Lossless images bigger than this are box-reduced before hashing.
    reduce_above_pixels: int = 16_000_000
