"""Bank import throughput: `hashbank bank import` of a 1,000,000-line PDQ list into SQLite and PostgreSQL.

A ThreatExchange line file (``pdq <64 hex>`` per line, random values, seeded) is imported by the real
command (``hashbank bank import BANK FILE --format te``, one process per run, so start-up, parsing,
validation, the unique check and the change log are all counted) into an empty bank, then imported
again (it must add 0). Peak RSS is the child's own (wait4). Peers on the same rows: plain sqlite3
``executemany`` of INSERT OR IGNORE into a table with the same unique key, and psycopg COPY into
PostgreSQL; hashbank's time over the peer's is printed as a ratio (it also writes the change log).
Bar: SQLite import <= 60 s with peak RSS < 1 GB; the re-import adds nothing.

    flock /tmp/hashbank-bench.lock python bench/import_bench.py [--lines 1000000] [--no-pg]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PG_URL = os.environ.get("HASHBANK_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLI = [sys.executable, "-c", "from hashbank.cli import main; main()"]


def write_list(path: Path, lines: int, seed: int = 4) -> None:
    """``lines`` distinct random PDQ values in ThreatExchange line format."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for start in range(0, lines, 100_000):
            fh.write("".join(f"pdq {rng.getrandbits(256):064x}\n" for _ in range(min(100_000, lines - start))))


def run_cli(url: str, *args: str) -> tuple[float, int, dict]:
    """Run ``hashbank bank ARGS`` against ``url``: (seconds, peak RSS bytes, last JSON line of stdout)."""
    env = {**os.environ, "HASHBANK_DATABASE_URL": url}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errs:
        start = time.perf_counter()
        proc = subprocess.Popen([*CLI, "bank", *args], env=env, stdout=out, stderr=errs)
        _pid, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS, not the bench's
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        errs.seek(0)
        stdout, stderr = out.read(), errs.read()
    if proc.returncode != 0:
        sys.exit(f"hashbank bank {' '.join(args)} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    lines = stdout.decode().strip().splitlines()
    return seconds, usage.ru_maxrss * 1024, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def hashbank_import(url: str, path: Path, lines: int, label: str) -> dict[str, float]:
    """Create a bank, import the file twice through the CLI; print and return the figures."""
    run_cli(url, "create", "bench")
    seconds, rss, first = run_cli(url, "import", "bench", str(path), "--format", "te", "--json")
    if first.get("added") != lines or first.get("refused"):
        sys.exit(f"{label}: first import gave {first}, expected {lines} added")
    again_s, again_rss, again = run_cli(url, "import", "bench", str(path), "--format", "te", "--json")
    print(f"{label:<10} import   {lines:>9} rows  {seconds:7.1f} s  {lines / seconds:>9,.0f} rows/s  "
          f"peak RSS {rss / 2**20:6.0f} MiB  -> {first}")
    print(f"{label:<10} re-import {lines:>8} rows  {again_s:7.1f} s  {lines / again_s:>9,.0f} rows/s  "
          f"peak RSS {again_rss / 2**20:6.0f} MiB  -> {again}")
    if again.get("added") != 0 or again.get("existing") != lines:
        sys.exit(f"{label}: re-import gave {again}, expected 0 added and {lines} already there")
    return {"seconds": seconds, "rss": rss, "reimport_seconds": again_s}


def sqlite_peer(path: Path, db: Path) -> float:
    """Plain sqlite3: parse the lines, executemany INSERT OR IGNORE in one transaction (no change log)."""
    start = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE e (id INTEGER PRIMARY KEY, bank_id INT, signal TEXT, value TEXT, UNIQUE(bank_id, signal, value))"
    )
    conn.execute("BEGIN")
    with path.open() as fh:
        conn.executemany(
            "INSERT OR IGNORE INTO e (bank_id, signal, value) VALUES (1, ?, ?)", (line.split() for line in fh)
        )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - start


def pg_peer(path: Path, dsn: str) -> float:
    """psycopg COPY of the same rows into a table with the same unique key (no change log)."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE e (id BIGSERIAL PRIMARY KEY, bank_id INT, signal TEXT, value TEXT, "
                     "UNIQUE(bank_id, signal, value))")
        with conn.cursor().copy("COPY e (bank_id, signal, value) FROM STDIN") as copy, path.open() as fh:
            for line in fh:
                signal, value = line.split()
                copy.write_row((1, signal, value))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hashbank-import-bench-") as tmp:
        path = Path(tmp) / "pdq.txt"
        write_list(path, args.lines)
        print(f"{args.lines:,} PDQ lines, {path.stat().st_size / 2**20:.0f} MiB (ThreatExchange line format)")

        lite = hashbank_import(f"sqlite:///{tmp}/bank.db", path, args.lines, "SQLite")
        peer = sqlite_peer(path, Path(tmp) / "peer.db")
        print(f"{'SQLite':<10} peer: sqlite3 executemany {peer:.1f} s ({args.lines / peer:,.0f} rows/s); "
              f"hashbank / peer time = {lite['seconds'] / peer:.2f}x")

        if not args.no_pg:
            from sqlalchemy import create_engine, make_url, text

            schema = f"bench_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
                pg = hashbank_import(url.render_as_string(False), path, args.lines, "PostgreSQL")
                dsn = f"postgresql://{url.username}@{url.host}:{url.port}/{url.database}"
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}_peer"'))
                peer_pg = pg_peer(path, f"{dsn}?options=-csearch_path%3D{schema}_peer")
                print(f"{'PostgreSQL':<10} peer: psycopg COPY {peer_pg:.1f} s ({args.lines / peer_pg:,.0f} rows/s); "
                      f"hashbank / peer time = {pg['seconds'] / peer_pg:.2f}x")
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_peer" CASCADE'))
                admin.dispose()

        ok = lite["seconds"] <= 60 and lite["rss"] < 2**30
        print(f"bar (SQLite <= 60 s, peak RSS < 1 GiB, re-import adds 0): {'PASS' if ok else 'FAIL'}")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
