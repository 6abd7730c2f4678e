"""Fingerprint files and bytes: one read, every requested signal, a typed result."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashbank.media import MediaError, MediaLimits
from hashbank.signals.base import Content
from hashbank.signals.registry import get, names


@dataclass(slots=True)
class HashResult:
    """Fingerprints of one file (or an error saying why there are none)."""

    path: str | None = None
    bytes: int = 0
    width: int | None = None
    height: int | None = None
    signals: dict[str, str] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    variants: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def md5(self) -> str | None:
        return self.signals.get("md5")

    @property
    def sha1(self) -> str | None:
        return self.signals.get("sha1")

    @property
    def sha256(self) -> str | None:
        return self.signals.get("sha256")

    @property
    def pdq(self) -> str | None:
        return self.signals.get("pdq")

    @property
    def pdq_quality(self) -> int | None:
        return self.quality.get("pdq")

    def to_json(self) -> dict[str, Any]:
        """Flat record as the CLI prints it: one key per signal, ``<sig>_quality``, ``<sig>_dihedral``."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        out: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "width": self.width, "height": self.height}
        for name, value in self.signals.items():
            out[name] = value
            if name in self.quality:
                out[f"{name}_quality"] = self.quality[name]
            if self.variants.get(name):
                out[f"{name}_dihedral"] = self.variants[name]
        return out


def resolve_signals(requested: Iterable[str] | None) -> list[str]:
    """Validated names of signals to compute; every computable one when none are asked for."""
    if not requested:
        return [name for name in names() if get(name).computable]
    chosen = list(requested)
    for name in chosen:
        if not get(name).computable:
            raise ValueError(f"hashbank cannot compute {name}; it only stores and matches given values")
    return chosen


def hash_bytes(
    data: bytes,
    *,
    signals: Sequence[str] | None = None,
    dihedral: bool = False,
    limits: MediaLimits | None = None,
    path: str | None = None,
) -> HashResult:
    """Fingerprint in-memory bytes. A file that is not a readable image gets ``error``
    when a pixel signal was asked for; digests alone work on any bytes."""
    content = Content(data, limits)
    result = HashResult(path=path, bytes=len(data))
    try:
        if not data:
            raise MediaError("empty file")
        for name in resolve_signals(signals):
            signal = get(name)
            computed = signal.compute(content, dihedral=dihedral)
            result.signals[name] = computed.value
            if computed.quality is not None:
                result.quality[name] = computed.quality
            if computed.variants:
                result.variants[name] = computed.variants
        if "image" in content.__dict__:
            result.width, result.height = content.image.width, content.image.height
    except MediaError as exc:
        return HashResult(path=path, bytes=len(data), error=str(exc))
    return result


def read_limited(path: str | os.PathLike[str], limits: MediaLimits) -> bytes:
    """Read a whole regular file, refusing (MediaError) what is over the byte limit."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_bytes:
            raise MediaError(f"file is {size} bytes, over the {limits.max_bytes}-byte limit")
        # Ask for what fstat promised (+1 to see growth): asking for the limit
        # would make Python allocate the whole limit for every small file.
        data = fh.read((size or limits.max_bytes) + 1)
        if size and len(data) > size:
            data += fh.read(limits.max_bytes + 1 - len(data))
    if len(data) > limits.max_bytes:
        raise MediaError(f"file is over the {limits.max_bytes}-byte limit")
    return data


def hash_file(
    path: str | os.PathLike[str],
    *,
    signals: Sequence[str] | None = None,
    dihedral: bool = False,
    limits: MediaLimits | None = None,
) -> HashResult:
    """Fingerprint one file; unreadable or undecodable files give a result with ``error``."""
    limits = limits or MediaLimits()
    name = os.fspath(path)
    try:
        data = read_limited(path, limits)
    except MediaError as exc:
        return HashResult(path=name, error=str(exc))
    except OSError as exc:
        return HashResult(path=name, error=f"cannot read file ({exc.strerror or exc})")
    return hash_bytes(data, signals=signals, dihedral=dihedral, limits=limits, path=name)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Files under the given paths (folders recurse, sorted; links to folders not followed)."""
    for root in paths:
        p = Path(root)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for fname in sorted(filenames):
                    yield os.path.join(dirpath, fname)
        else:
            yield os.fspath(p)


def _hash_one(args: tuple[str, tuple[str, ...] | None, bool, MediaLimits]) -> HashResult:
    path, signals, dihedral, limits = args
    return hash_file(path, signals=signals, dihedral=dihedral, limits=limits)


def hash_files(
    paths: Iterable[str],
    *,
    signals: Sequence[str] | None = None,
    dihedral: bool = False,
    limits: MediaLimits | None = None,
    workers: int = 1,
) -> Iterator[HashResult]:
    """Fingerprint many files in input order, on ``workers`` processes when > 1."""
    limits = limits or MediaLimits()
    chosen = tuple(resolve_signals(signals))
    jobs = ((path, chosen, dihedral, limits) for path in paths)
    if workers <= 1:
        yield from map(_hash_one, jobs)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_hash_one, jobs, chunksize=16)
