"""An import killed with SIGKILL keeps whole committed batches; running it again ends exact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from hashbank.exchange import import_file
from hashbank.store import Store

LINES, BATCH = 20_000, 500
IMPORT = """
import sys
from hashbank.exchange import import_file
from hashbank.store import open_store
import_file(open_store(sys.argv[1]), "b", sys.argv[2], "te", batch_size=int(sys.argv[3]))
"""


def test_sigkill_midway_then_rerun(store: Store, store_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(LINES)]
    path = tmp_path / "list.txt"
    path.write_text("".join(f"pdq {v}\n" for v in values))
    store.create_bank("b")

    proc = subprocess.Popen([sys.executable, "-c", IMPORT, store_url, str(path), str(BATCH)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while store.last_seq() < BATCH and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the import finished before it could be killed"

    kept = [e.value for e in store.entries("b")]
    assert 0 < len(kept) < LINES and len(kept) % BATCH == 0
    assert kept == values[: len(kept)]  # whole batches, in file order, nothing half-written
    assert store.last_seq() == len(kept)

    again = import_file(store, "b", path, "te")
    assert (again.added, again.existing, again.error_count) == (LINES - len(kept), len(kept), 0)
    assert [e.value for e in store.entries("b")] == values
    assert [c.op for c in store.changes(limit=10 * LINES)] == ["add"] * LINES
    assert import_file(store, "b", path, "te").added == 0
