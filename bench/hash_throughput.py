"""Fingerprint throughput: hashbank against the PDQ/phash tools a user would pick instead.

Every contender goes end to end from a file path to a hash, on the same
imagenet-sample-1000 files, in one run, pinned to one core (hashbank also
with --workers 2). Prints images/s and hashbank's ratio to each.

    python bench/hash_throughput.py [--limit N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One core each: no hidden BLAS/OpenMP threads in anyone's numbers.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-1000" / "images"


def contenders() -> dict[str, Callable[[str], object]]:
    """name -> function(path) -> hash, for every tool importable here."""
    import numpy as np
    from PIL import Image

    import hashbank

    found: dict[str, Callable[[str], object]] = {
        "hashbank pdq": lambda p: hashbank.hash_file(p, signals=["pdq"]).pdq,
        "hashbank pdq+md5+sha1+sha256": lambda p: hashbank.hash_file(p).pdq,
    }
    try:
        import cv2

        # OpenCV's own thread pool would spin on the one core everyone shares
        # here, slowing whoever runs next; one thread is its one-core mode.
        cv2.setNumThreads(1)
        from perception.hashers import PDQHash

        hasher = PDQHash()
        found["perception PDQHash"] = hasher.compute
    except ImportError as exc:
        print(f"skipping perception: {exc}")
    try:
        import pdqhash

        found["pdqhash (Pillow decode)"] = lambda p: pdqhash.compute(np.asarray(Image.open(p).convert("RGB")))
    except ImportError as exc:
        print(f"skipping pdqhash: {exc}")
    try:
        import imagehash

        found["imagehash phash"] = lambda p: imagehash.phash(Image.open(p))
    except ImportError as exc:
        print(f"skipping imagehash: {exc}")
    return found


def interleaved_rates(fns: dict[str, Callable[[str], object]], files: list[str], repeat: int) -> dict[str, float]:
    """images/s of each contender, timed in turns over small chunks of the same files.

    The machine is shared and noisy: taking turns every 32 files spreads any
    disturbance evenly over the contenders instead of landing on whoever ran
    at the wrong moment. One untimed warm-up pass first.
    """
    for fn in fns.values():
        for f in files[:32]:
            fn(f)
    spent = dict.fromkeys(fns, 0.0)
    names = list(fns)
    for r in range(repeat):
        for c, i in enumerate(range(0, len(files), 32)):
            chunk = files[i : i + 32]
            shift = (r + c) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                for f in chunk:
                    fns[name](f)
                spent[name] += time.perf_counter() - start
    return {name: len(files) * repeat / spent[name] for name in names}


def workers_rate(files: list[str], workers: int, repeat: int) -> float:
    from hashbank.signals.compute import hash_files

    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for _result in hash_files(files, signals=["pdq"], workers=workers):
            pass
        best = max(best, len(files) / (time.perf_counter() - start))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: benign photo corpus not found at {DATA}")
        return 0
    files = sorted(str(p) for p in DATA.iterdir())
    files = files[: args.limit] if args.limit else files
    for f in files:  # warm the page cache so every contender reads from memory
        Path(f).read_bytes()

    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})
    rates = interleaved_rates(contenders(), files, args.repeat)
    os.sched_setaffinity(0, set(cores))
    one = workers_rate(files, 1, args.repeat)
    two = workers_rate(files, 2, args.repeat) if len(cores) >= 2 else float("nan")

    print(f"\n{len(files)} imagenet-sample JPEGs x {args.repeat}, end to end from path, one core each, in turns")
    print(f"{'contender':34} {'images/s':>9} {'hashbank pdq ×':>15}")
    ours = rates["hashbank pdq"]
    for name, value in rates.items():
        print(f"{name:34} {value:9.0f} {ours / value:14.2f}×")
    print(f"\nhashbank hash_files workers=1: {one:.0f}/s, workers=2: {two:.0f}/s, speed-up {two / one:.2f}×")
    perception = rates.get("perception PDQHash")
    if perception:
        print(
            f"bar: hashbank ≥ 3× perception on one core: {ours / perception:.2f}× "
            f"{'PASS' if ours >= 3 * perception else 'FAIL'}"
        )
    print(f"bar: workers=2 ≥ 1.7× workers=1: {two / one:.2f}× {'PASS' if two >= 1.7 * one else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
