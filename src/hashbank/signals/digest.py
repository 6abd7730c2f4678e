"""Cryptographic digests of the exact bytes: md5, sha1, sha256."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from hashbank.signals.base import Computed, Content, HexDigestSignal
from hashbank.signals.registry import register


class _Digest(HexDigestSignal):
    algorithm: ClassVar[str]

    def compute(self, content: Content, *, dihedral: bool = False) -> Computed:
        return Computed(hashlib.new(self.algorithm, content.data).hexdigest())


@register
class Md5Signal(_Digest):
    name = "md5"
    algorithm = "md5"
    hex_length = 32


@register
class Sha1Signal(_Digest):
    name = "sha1"
    algorithm = "sha1"
    hex_length = 40


@register
class Sha256Signal(_Digest):
    name = "sha256"
    algorithm = "sha256"
    hex_length = 64
