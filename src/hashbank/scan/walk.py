"""Every regular file under the scan's paths, in a stable order, with what was skipped and why.

Only ``stat`` and folder listings happen here (no file is opened), so the
walk is cheap on the client and the workers do the reading. Symbolic links
are followed, but a folder is entered once: a link back to a folder already
seen (a loop) is reported, not followed. Devices, sockets and FIFOs are
reported and never opened (reading a FIFO or a tape device would hang).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator

from hashbank.scan.examine import Record

_SPECIAL = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
}

#: A file to examine: its path (or URL) and size in bytes.
Unit = tuple[str, int]


def walk(roots: Iterable[str]) -> Iterator[Unit | Record]:
    """Files (as Units) and problems (as Records with ``error``), folders sorted by name."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        if "://" in root:
            yield from _walk_url(root)
            continue
        stack = [root]
        while stack:
            path = stack.pop()
            try:
                st = os.stat(path)
            except OSError as exc:
                yield _stat_error(path, exc)
                continue
            if stat.S_ISREG(st.st_mode):
                yield path, st.st_size
            elif stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    yield Record(path, "folder", error="link to a folder already scanned (symbolic link loop), skipped")
                    continue
                seen.add((st.st_dev, st.st_ino))
                try:
                    names = os.listdir(path)
                except OSError as exc:
                    yield Record(path, "folder", error=f"cannot list folder ({exc.strerror or exc})")
                    continue
                stack.extend(os.path.join(path, name) for name in sorted(names, reverse=True))
            else:
                what = _SPECIAL.get(stat.S_IFMT(st.st_mode), "special file")
                yield Record(path, "special", error=f"not a regular file ({what}), skipped")


def _stat_error(path: str, exc: OSError) -> Record:
    if exc.errno == errno.ELOOP:
        reason = "symbolic link loop, skipped"
    elif exc.errno == errno.ENOENT and os.path.islink(path):
        reason = "broken symbolic link, skipped"
    else:
        reason = f"cannot read file ({exc.strerror or exc})"
    return Record(path, "unknown", error=reason)


def _walk_url(url: str) -> Iterator[Unit | Record]:
    """Files under an fsspec URL (s3://, gs://, file://, ...), sorted."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        found = fs.find(root, detail=True) if fs.isdir(root) else {root: fs.info(root)}
    except (OSError, ValueError, ImportError) as exc:
        yield Record(url, "unknown", error=f"cannot list {url} ({exc})")
        return
    for path in sorted(found):
        yield fs.unstrip_protocol(path), int(found[path].get("size") or 0)
