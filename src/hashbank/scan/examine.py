"""One file in, one record per file it holds out: what runs on a scan worker.

The worker opens the file by path (or fsspec URL) itself, so file bytes never
travel between processes, and reads it once: images go through
``hash_bytes`` with every configured signal, videos get their byte digests,
archives are opened and their members examined the same way.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from hashbank.scan.archives import ArchiveError, Budget, ScanLimits, members
from hashbank.scan.identify import HEAD, identify
from hashbank.signals.compute import hash_bytes
from hashbank.signals.registry import get


@dataclass(slots=True)
class Record:
    """What the scan learnt about one file: kind, size, fingerprints or why there are none."""

    path: str
    kind: str  # image, video, archive, other, special, folder, unknown
    size: int = 0
    signals: dict[str, str] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        return cls(**data)


def _open(path: str) -> IO[bytes]:
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")


def examine(path: str, signals: tuple[str, ...], limits: ScanLimits) -> list[Record]:
    """Records for the file at ``path``: itself, plus every member when it is an archive."""
    try:
        with _open(path) as fh:
            size = fh.seek(0, io.SEEK_END)
            fh.seek(0)
            head = fh.read(HEAD)
            kind = identify(head)
            if kind in ("zip", "tar", "compressed"):
                fh.seek(0)
                return _archive(path, size, fh, kind, signals, limits, Budget(limits.max_archive_bytes), 1)
            if kind == "other":  # read no further: a drive is full of files that are not media
                return [Record(path, "other", size, error=_not_media(size))]
            if kind == "video":
                return [Record(path, "video", size, signals=_stream_digests(head, fh, signals))]
            if size > limits.media.max_bytes:
                return [Record(path, kind, size, error=f"file over the {limits.media.max_bytes}-byte limit")]
            # Read what the file holds (+1 to see it grow), not up to the limit: asking for 256 MiB costs
            # a huge allocation per file.
            fh.seek(0)
            data = fh.read(min(size, limits.media.max_bytes) + 1)
    except OSError as exc:
        return [Record(path, "unknown", error=f"cannot read file ({exc.strerror or exc})")]
    return _content(path, data, signals, limits, None, 1)


def _content(
    name: str, data: bytes, signals: tuple[str, ...], limits: ScanLimits, budget: Budget | None, depth: int
) -> list[Record]:
    kind = identify(data[:HEAD])
    if kind in ("zip", "tar", "compressed"):
        if depth > limits.max_depth:
            reason = f"archive nested more than {limits.max_depth} deep, not opened"
            return [Record(name, "archive", len(data), error=reason)]
        budget = budget or Budget(limits.max_archive_bytes)
        return _archive(name, len(data), io.BytesIO(data), kind, signals, limits, budget, depth)
    if kind == "other":
        return [Record(name, "other", len(data), error=_not_media(len(data)))]
    chosen = signals if kind == "image" else tuple(s for s in signals if not get(s).needs_pixels)
    if not chosen:
        return [Record(name, kind, len(data))]
    result = hash_bytes(data, signals=chosen, limits=limits.media, path=name)
    return [Record(name, kind, len(data), dict(result.signals), dict(result.quality), result.error)]


def _not_media(size: int) -> str:
    return "not an image or video (by content)" if size else "empty file"


def _archive(
    name: str,
    size: int,
    fh: IO[bytes],
    kind: str,
    signals: tuple[str, ...],
    limits: ScanLimits,
    budget: Budget,
    depth: int,
) -> list[Record]:
    archive = Record(name, "archive", size)
    out = [archive]
    try:
        for inner, data, reason in members(fh, kind, limits, budget):
            member = f"{name}!/{inner.lstrip('/')}"
            if data is None:
                out.append(Record(member, "unknown", error=reason))
            else:
                out += _content(member, data, signals, limits, budget, depth + 1)
    except ArchiveError as exc:
        archive.error = str(exc)
    return out


def _stream_digests(head: bytes, fh: IO[bytes], signals: tuple[str, ...]) -> dict[str, str]:
    """Byte digests of a video of any size in constant memory (no pixel signal reads video yet)."""
    digests = {s: hashlib.new(getattr(get(s), "algorithm", s)) for s in signals if not get(s).needs_pixels}
    chunk = head
    while chunk:
        for d in digests.values():
            d.update(chunk)
        chunk = fh.read(1 << 20)
    return {s: d.hexdigest() for s, d in digests.items()}
