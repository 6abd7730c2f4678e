"""Members of zip and tar (gz/bz2/xz) archives, read one at a time within limits.

A hostile archive can declare or expand to far more than the disk holds (zip
bombs, gzip bombs, overlapping members). Every member is size-checked from its
header before it is read and again while reading, and the whole archive tree
(nested archives included) shares one byte budget, so a bomb costs bounded
time and memory and ends with a reason in the report.
"""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from hashbank.media import MediaLimits


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Per-file limits (``media``) plus the archive guards."""

    media: MediaLimits = field(default_factory=MediaLimits)
    #: Largest archive member read (declared or actual size).
    max_member_bytes: int = 256 * 1024 * 1024
    #: Bytes one top-level archive may expand to, nested archives included.
    max_archive_bytes: int = 8 * 1024**3
    max_members: int = 1_000_000
    #: Archive nesting opened: 1 = archives inside a folder only, 3 = two archives deep inside one.
    max_depth: int = 3


class ArchiveError(Exception):
    """The archive as a whole could not be (fully) read; the message says why."""


@dataclass(slots=True)
class Budget:
    """Bytes left to expand in one top-level archive tree."""

    remaining: int


Member = tuple[str, bytes | None, str | None]


def members(fh: IO[bytes], kind: str, limits: ScanLimits, budget: Budget) -> Iterator[Member]:
    """(name inside the archive, bytes or None, reason when None) for each regular member."""
    try:
        if kind == "zip":
            yield from _zip_members(fh, limits, budget)
        else:
            yield from _tar_members(fh, limits, budget)
    except ArchiveError:
        raise
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"corrupt zip archive ({exc})") from None
    except tarfile.ReadError as exc:
        what = "tar archive" if kind == "tar" else "compressed file that is not a readable tar archive"
        raise ArchiveError(f"corrupt or truncated {what} ({exc})") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"corrupt or truncated archive ({exc or type(exc).__name__})") from None


def _over_member_limit(size: int, limits: ScanLimits) -> str | None:
    if size > limits.max_member_bytes:
        return f"archive member of {size} bytes, over the {limits.max_member_bytes}-byte limit (zip bomb guard)"
    return None


def _spend(size: int, limits: ScanLimits, budget: Budget) -> None:
    if size > budget.remaining:
        raise ArchiveError(
            f"archive expands to more than {limits.max_archive_bytes} bytes (zip bomb guard); rest not read"
        )
    budget.remaining -= size


def _count(n: int, limits: ScanLimits) -> None:
    if n > limits.max_members:
        raise ArchiveError(f"archive has more than {limits.max_members} members (zip bomb guard); rest not read")


def _zip_members(fh: IO[bytes], limits: ScanLimits, budget: Budget) -> Iterator[Member]:
    with zipfile.ZipFile(fh) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        _count(len(infos), limits)
        for info in infos:
            reason = _over_member_limit(info.file_size, limits)
            if reason is None:
                _spend(info.file_size, limits, budget)
                try:
                    with zf.open(info) as member:
                        data = member.read(limits.max_member_bytes + 1)
                except RuntimeError as exc:  # encrypted
                    reason = f"cannot read archive member ({exc})"
                except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError) as exc:
                    reason = f"corrupt archive member ({exc or type(exc).__name__})"
                else:
                    if len(data) > limits.max_member_bytes:
                        reason = f"archive member over the {limits.max_member_bytes}-byte limit (zip bomb guard)"
            yield (info.filename, None, reason) if reason else (info.filename, data, None)


def _tar_members(fh: IO[bytes], limits: ScanLimits, budget: Budget) -> Iterator[Member]:
    with tarfile.open(fileobj=fh, mode="r|*") as tf:
        for n, info in enumerate(tf, 1):
            _count(n, limits)
            if not info.isfile():
                continue
            # Skipping a member in a compressed stream still decompresses it: charge it either way.
            _spend(info.size, limits, budget)
            reason = _over_member_limit(info.size, limits)
            if reason:
                yield info.name, None, reason
                continue
            member = tf.extractfile(info)
            yield info.name, member.read() if member else b"", None
