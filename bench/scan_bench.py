"""Forensic scan throughput: hashbank scan against perception's PDQHash on the same files.

imagenet-sample-1000 copied --copies times into a temp folder, a bank of
--bank entries (random PDQ hashes plus the real ones of 100 photos, so there
are matches), then files/s for ``--workers 1``, ``--workers 2`` and
``--dask local`` (cluster start-up included, as a user sees it), each hashing
every file with pdq+md5+sha1+sha256 and matching it; and perception's
PDQHash (PDQ only) over --peer-files of the same files in one process.
Bar: ``--workers 2`` at least 4x perception's single-process rate.

    python bench/scan_bench.py [--copies 10] [--bank 100000] [--peer-files 1000]
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-1000"


def build_bank(url: str, size: int) -> int:
    """A bank of ``size`` PDQ entries, 100 of them the real hashes of photos in the corpus."""
    from hashbank.store import NewEntry, open_store

    with (DATA / "manifest.csv").open(newline="") as fh:
        real = [row["pdq"] for row in csv.DictReader(fh)][:100]
    values = real + [secrets.token_hex(32) for _ in range(size - len(real))]
    with open_store(url) as store:
        store.create_bank("bench")
        store.add_entries("bench", (NewEntry("pdq", v, category="1") for v in values))
    return len(real)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--bank", type=int, default=100_000)
    parser.add_argument("--peer-files", type=int, default=1000, help="files perception hashes (it is slow)")
    args = parser.parse_args()
    if not (DATA / "images").is_dir():
        sys.exit(f"benign photo corpus not found at {DATA}")
    from hashbank.scan import bank_matcher, run_scan

    with tempfile.TemporaryDirectory(prefix="hashbank-scan-bench-") as tmp:
        root = Path(tmp) / "drive"
        for c in range(args.copies):
            shutil.copytree(DATA / "images", root / f"copy{c}")
        files = sorted(str(p) for p in root.rglob("*") if p.is_file())
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        build_bank(url, args.bank)
        t1 = time.perf_counter()
        match = bank_matcher(url=url)
        t2 = time.perf_counter()
        print(f"{len(files)} files, bank of {args.bank} entries (store {t1 - t0:.1f}s, index {t2 - t1:.1f}s)")

        rates: dict[str, float] = {}
        for label, options in (
            ("hashbank scan --workers 1", {"workers": 1}),
            ("hashbank scan --workers 2", {"workers": 2}),
            ("hashbank scan --dask local", {"workers": 2, "dask": "local"}),
        ):
            result = run_scan([str(root)], match=match, **options)  # type: ignore[arg-type]
            matched = sum(bool(r.matches) for r in result.records)
            rates[label] = len(result.records) / result.elapsed
            print(f"  {label:34s} {rates[label]:8.1f} files/s  ({result.elapsed:.1f}s, {matched} matched)")

        from perception.hashers import PDQHash

        hasher, sample = PDQHash(), files[: args.peer_files]
        start = time.perf_counter()
        for path in sample:
            hasher.compute(path)
        peer = len(sample) / (time.perf_counter() - start)
        print(f"  {'perception PDQHash, 1 process':34s} {peer:8.1f} files/s  ({len(sample)} files)")

    print("\nratio to perception PDQHash (one process):")
    for label, rate in rates.items():
        print(f"  {label:34s} {rate / peer:6.2f}x")
    ratio = rates["hashbank scan --workers 2"] / peer
    print(f"\nbar: --workers 2 >= 4x perception: {'PASS' if ratio >= 4 else 'FAIL'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
