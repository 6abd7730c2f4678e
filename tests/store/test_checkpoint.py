"""The WAL checkpointer keeps an SQLite WAL bounded for writers that have automatic checkpoints off,
even while readers never pause (which keeps a PASSIVE checkpoint alone from starting the WAL over)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from hashbank.store import open_store
from hashbank.store.engine import WalCheckpointer

COMMITS = 800


def busy_wal(path: Path, checkpointer: WalCheckpointer) -> int:
    """Largest WAL file seen while a writer without automatic checkpoints commits ``COMMITS`` times
    and readers keep a read transaction open all along, ``checkpointer`` running."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad TEXT)")
    stop = threading.Event()

    def read() -> None:
        # Two connections taking turns, the next read transaction begun before the last one ends: one
        # is open at every instant, as among a busy server's readers (with gaps, a PASSIVE round
        # may find none and start the WAL over by luck).
        ahead, behind = (sqlite3.connect(path, isolation_level=None) for _ in range(2))
        behind.execute("BEGIN")
        behind.execute("SELECT count(*) FROM t").fetchone()
        while not stop.is_set():
            ahead.execute("BEGIN")
            ahead.execute("SELECT count(*) FROM t").fetchone()
            behind.execute("COMMIT")
            time.sleep(0.003)
            ahead, behind = behind, ahead
        behind.execute("COMMIT")
        ahead.close()
        behind.close()

    readers = [threading.Thread(target=read)]
    for thread in readers:
        thread.start()
    checkpointer.start()
    largest = 0
    try:
        for i in range(COMMITS):
            writer.execute("BEGIN IMMEDIATE")
            writer.executemany("INSERT INTO t (pad) VALUES (?)", [("x" * 500,)] * 8)
            writer.execute("COMMIT")
            largest = max(largest, os.path.getsize(f"{path}-wal"))
            if i % 20 == 0:
                # Let the checkpointer's rounds come between commits; short, as a longer lull lets a
                # PASSIVE round backfill it all and the readers turn over, which starts the WAL over.
                time.sleep(0.005)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        checkpointer.stop()
        writer.close()
    return largest


def test_checkpointer_keeps_the_wal_bounded_under_constant_readers(tmp_path: Path) -> None:
    alone = tmp_path / "alone.db"
    helped = tmp_path / "helped.db"
    for path in (alone, helped):
        open_store(f"sqlite:///{path}").close()  # WAL mode, schema
    with open_store(f"sqlite:///{alone}") as store:  # PASSIVE rounds only, as SQLite's own checkpoints
        unbounded = busy_wal(alone, WalCheckpointer(store.engine, interval=0.02, restart_pages=10**9))
    with open_store(f"sqlite:///{helped}") as store:
        bounded = busy_wal(helped, WalCheckpointer(store.engine, interval=0.02, restart_pages=64, busy_ms=50))
    assert unbounded > 2_000_000, unbounded  # the readers keep the WAL from ever starting over
    assert bounded * 2 < unbounded, (bounded, unbounded)
    with sqlite3.connect(helped) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == COMMITS * 8
