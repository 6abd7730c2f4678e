"""Run a scan: walk, examine on worker processes or a Dask cluster, match, checkpoint.

Workers only read and hash (the cost); matching happens here in the client,
once per file, against the one Matcher: a large index is built and kept in
memory once instead of per worker, and local, multi-process and Dask scans
give identical results because the same code matches every fingerprint.
What comes back from a worker is a few hundred bytes per file.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from typing import Any

from hashbank.scan.archives import ScanLimits
from hashbank.scan.checkpoint import Checkpoint
from hashbank.scan.examine import Record, examine
from hashbank.scan.progress import ScanProgress
from hashbank.scan.walk import Unit, walk
from hashbank.signals.compute import HashResult, resolve_signals

#: Matches one file's fingerprints; returns objects with bank, entry_id, category, signal, distance.
MatchFn = Callable[[HashResult], Sequence[Any]]
Done = tuple[str, list[Record]]


@dataclass(slots=True)
class ScanResult:
    """Every record of the scan, sorted by path, and the wall time it took."""

    records: list[Record]
    elapsed: float


def run_scan(
    paths: Iterable[str],
    *,
    match: MatchFn | None = None,
    signals: Sequence[str] | None = None,
    limits: ScanLimits | None = None,
    workers: int = 1,
    dask: str | None = None,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
    progress: bool = False,
) -> ScanResult:
    """Scan files, folders and archives; ``dask`` is a scheduler address or ``"local"``."""
    started = time.monotonic()
    chosen, limits = tuple(resolve_signals(signals)), limits or ScanLimits()
    done = checkpoint.open(resume) if checkpoint else {}
    units: list[Unit] = []
    records: list[Record] = []
    for item in walk(paths):
        if isinstance(item, Record):
            records.append(item)
        elif item[0] not in done:
            units.append(item)
            done[item[0]] = []  # also drops a path named twice
    for found in done.values():
        records += found
    sizes = dict(units)
    with ExitStack() as stack:
        # Processes first: forking after the progress bar's thread starts could deadlock a child.
        if dask:
            results = _on_dask(stack, dask, units, chosen, limits, workers)
        else:
            results = _on_processes(stack, units, chosen, limits, workers)
        bar = stack.enter_context(ScanProgress(progress, sum(sizes.values()), records))
        for unit, found in results:
            for record in found:
                _match(record, match)
            records += found
            if checkpoint:
                checkpoint.add(unit, found)
            bar.advance(found, sizes[unit])
    if checkpoint:
        checkpoint.close()
    records.sort(key=lambda r: r.path)
    return ScanResult(records, time.monotonic() - started)


def _match(record: Record, match: MatchFn | None) -> None:
    if match is None or not record.signals:
        return
    found = match(HashResult(path=record.path, bytes=record.size, signals=record.signals, quality=record.quality))
    rows = {(m.bank, str(m.entry_id), m.signal): m for m in found}
    record.matches = [
        {"bank": m.bank, "entry_id": m.entry_id, "category": m.category, "signal": m.signal, "distance": m.distance}
        for _, m in sorted(rows.items())
    ]


def _examine(job: tuple[str, tuple[str, ...], ScanLimits]) -> Done:
    path, signals, limits = job
    return path, examine(path, signals, limits)


def examine_batch(paths: list[str], signals: tuple[str, ...], limits: ScanLimits) -> list[Done]:
    """A Dask task: a few files, so per-task overhead stays small next to hashing."""
    return [(path, examine(path, signals, limits)) for path in paths]


def _on_processes(
    stack: ExitStack, units: list[Unit], signals: tuple[str, ...], limits: ScanLimits, workers: int
) -> Iterator[Done]:
    """As ``hash_files`` does: a fork pool, results as they finish (the report sorts)."""
    jobs = ((path, signals, limits) for path, _ in units)
    if workers <= 1 or len(units) <= 1:
        return map(_examine, jobs)
    pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers))
    # Large chunks: the pool's own threads cost the parent ~380 us per message at chunksize 1 (a third of a
    # file's hashing), ~60 us at 16; a tail of uneven chunks costs far less on any real scan.
    chunk = max(1, min(32, len(units) // (workers * 8)))
    return pool.imap_unordered(_examine, jobs, chunksize=chunk)


def _on_dask(
    stack: ExitStack, address: str, units: list[Unit], signals: tuple[str, ...], limits: ScanLimits, workers: int
) -> Iterator[Done]:
    """Tasks of paths on a Dask cluster, a bounded number in flight; workers open the files themselves."""
    from distributed import Client, LocalCluster, as_completed

    if address == "local":
        # CRITICAL only: a worker's last heartbeat racing the shutdown is logged as an ERROR with a traceback.
        cluster = LocalCluster(
            n_workers=max(workers, 1), threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )  # fmt: skip
        client = stack.enter_context(Client(stack.enter_context(cluster)))
    else:
        client = stack.enter_context(Client(address))
    paths = iter([path for path, _ in units])
    batches = iter(lambda: list(islice(paths, 16)), [])

    def submit() -> Any:
        batch = next(batches, None)
        return client.submit(examine_batch, batch, signals, limits, pure=False) if batch else None

    def results() -> Iterator[Done]:
        pending = as_completed([f for f in (submit() for _ in range(8 * max(workers, 1))) if f])
        for future in pending:
            yield from future.result()
            future.release()
            nxt = submit()
            if nxt is not None:
                pending.add(nxt)

    return results()


def bank_matcher(banks: Sequence[str] | None = None, url: str | None = None) -> MatchFn:
    """Match through ``hashbank.matching`` against the store's banks (all, or those named)."""
    from hashbank.matching import Matcher
    from hashbank.store import open_store

    store = open_store(url)
    known = {bank.name for bank in store.list_banks()}
    missing = [name for name in banks or () if name not in known]
    if missing:
        raise ValueError(f"no such bank: {', '.join(missing)}")
    matcher = Matcher(store)
    matcher.catch_up()
    chosen = list(banks) if banks else None
    return lambda result: matcher.match(result, banks=chosen)
