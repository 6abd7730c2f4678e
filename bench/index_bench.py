"""PDQ radius search: hashbank's HammingIndex against faiss and python-threatexchange on the same data.

For each N (default 1M and 10M) and each kind of data (uniform random; clustered: families of
near-duplicates, as real lists have), 1,000 queries, half within 0-31 bits of a stored hash and
half random. Contenders, one thread each (faiss held to one OpenMP thread; the index is single-threaded):

  hashbank HammingIndex               exact radius search
  faiss IndexBinaryFlat               exact brute force (the ground truth; timed on --flat-queries)
  faiss IndexBinaryMultiHash(256,16,16), nflip=1   what python-threatexchange uses (not exact)
  threatexchange PDQIndex             pytx's own index (at N <= --pytx-max, its Python build is slow)

Prints recall against brute force at r=31 and r=63 (and false hits), single-query median and p99
latency with hashbank's ratio to each, batch throughput, build time, and at the largest N: resident
memory per stored hash of a loaded index, load time of a saved index, add-one and remove-one latency.
Bars (issue 5, at 10M): >= 20x faster than MultiHash and >= 100x faster than Flat (median single
query), 100% recall, <= 64 bytes/hash, load <= 2 s, add/remove <= 1 ms.

    python bench/index_bench.py [--sizes 1000000,10000000] [--queries 1000] [--kinds uniform,clustered]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

RNG = np.random.default_rng(5)
RADII = (31, 63)


def uniform(n: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 32), dtype=np.uint8)


def flip_mask(n: int, per_bit: int) -> np.ndarray:
    """Random masks, each bit set with probability per_bit/256 (built 1M rows at a time)."""
    out = np.empty((n, 32), np.uint8)
    for start in range(0, n, 1_000_000):
        rows = min(1_000_000, n - start)
        bits = RNG.integers(0, 256, size=(rows, 256), dtype=np.uint8) < per_bit
        out[start : start + rows] = np.packbits(bits, axis=1)
    return out


def clustered(n: int, family: int = 10) -> np.ndarray:
    """Families of ``family`` near-duplicates: a seed with ~6 bits flipped per member."""
    seeds = uniform((n + family - 1) // family)
    rows = np.repeat(seeds, family, axis=0)[:n]
    return rows ^ flip_mask(n, 6)


def queries_for(hashes: np.ndarray, count: int) -> np.ndarray:
    """Half within 0-31 bits of a stored hash, half random."""
    near = hashes[RNG.integers(0, len(hashes), size=count // 2)].copy()
    for row in near:
        for bit in RNG.choice(256, size=int(RNG.integers(0, 32)), replace=False):
            row[bit >> 3] ^= np.uint8(1 << (7 - (bit & 7)))
    return np.concatenate([near, uniform(count - len(near))])


def timed(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[np.ndarray, list[object]]:
    """Per-query latency (s) of ``fn`` called one query at a time, and its answers."""
    out, lat = [], np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        out.append(fn(q[None, :]))
        lat[i] = time.perf_counter() - start
    return lat, out


def faiss_sets(index: object, queries: np.ndarray, radius: int) -> list[set[int]]:
    """Ids within ``radius`` (faiss's range search is strict, hence +1)."""
    lims, _, ids = index.range_search(queries, radius + 1)  # type: ignore[attr-defined]
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(queries))]


def rss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS"))


def report(label: str, lat: np.ndarray, ours: float) -> None:
    med = float(np.median(lat))
    print(f"    {label:44s} median {med * 1e6:10.1f} us  p99 {np.percentile(lat, 99) * 1e6:10.1f} us"
          f"  hashbank {med / ours:8.1f}x faster")  # fmt: skip


def run(n: int, kind: str, args: argparse.Namespace, last: bool) -> None:
    import faiss

    from hashbank.index import HammingIndex

    faiss.omp_set_num_threads(1)
    hashes = uniform(n) if kind == "uniform" else clustered(n)
    ids = np.arange(n, dtype=np.int64)
    queries = queries_for(hashes, args.queries)
    print(f"\n== N = {n:,}  {kind}  ({args.queries} queries, half within 31 bits of a stored hash)")

    start = time.perf_counter()
    ours = HammingIndex()
    ours.add(ids, hashes)
    print(f"  build: hashbank {time.perf_counter() - start:.1f} s", end="")
    start = time.perf_counter()
    flat = faiss.IndexBinaryFlat(256)
    flat.add(hashes)
    print(f", faiss Flat {time.perf_counter() - start:.1f} s", end="")
    start = time.perf_counter()
    multi = faiss.IndexBinaryMultiHash(256, 16, 16)
    multi.nflip = 1
    multi.add(hashes)
    print(f", faiss MultiHash {time.perf_counter() - start:.1f} s", flush=True)

    print("  recall against brute force (faiss Flat, all queries):")
    for radius in RADII:
        truth = faiss_sets(flat, queries, radius)
        got = [{i for i, _ in hits} for hits in ours.search(queries, radius)]
        mh = faiss_sets(multi, queries, radius)
        total = sum(map(len, truth))
        found = sum(len(g & t) for g, t in zip(got, truth, strict=True))
        false = sum(len(g - t) for g, t in zip(got, truth, strict=True))
        mh_found = sum(len(g & t) for g, t in zip(mh, truth, strict=True))
        print(f"    r={radius}: {total} true neighbours; hashbank {found / max(total, 1):.2%} ({false} false hits), "
              f"faiss MultiHash nflip=1 {mh_found / max(total, 1):.2%}")  # fmt: skip
    spot = queries[:: len(queries) // 5][:5]  # near and random ones
    pop = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint16)
    brute = [set(np.flatnonzero(pop[hashes ^ q].sum(1) <= 31).tolist()) for q in spot]
    assert brute == faiss_sets(flat, spot, 31), "faiss Flat disagrees with numpy brute force"

    print("  single query, one at a time, r=31:")
    lat, _ = timed(lambda q: ours.search(q, 31), queries)
    mine = float(np.median(lat))
    report("hashbank HammingIndex", lat, mine)
    lat, _ = timed(lambda q, index=multi: index.range_search(q, 32), queries)
    report("faiss IndexBinaryMultiHash(256,16,16) nflip=1", lat, mine)
    lat, _ = timed(lambda q, index=flat: index.range_search(q, 32), queries[: args.flat_queries])
    report(f"faiss IndexBinaryFlat ({args.flat_queries} queries)", lat, mine)
    if n <= args.pytx_max:
        pytx_single(hashes, queries, mine)

    start = time.perf_counter()
    ours.search(queries, 31)
    batch = time.perf_counter() - start
    start = time.perf_counter()
    multi.range_search(queries, 32)
    mh_batch = time.perf_counter() - start
    print(f"  batch of {len(queries)}: hashbank {len(queries) / batch:,.0f} q/s, "
          f"faiss MultiHash {len(queries) / mh_batch:,.0f} q/s")  # fmt: skip
    del flat, multi
    gc.collect()
    if last:
        live_changes(ours, hashes)
        with tempfile.TemporaryDirectory(prefix="hashbank-index-bench-") as tmp:
            path = Path(tmp) / "pdq.idx"
            start = time.perf_counter()
            ours.save(path)
            print(f"  save: {time.perf_counter() - start:.1f} s, {path.stat().st_size / n:.1f} bytes/hash on disk")
            del ours, hashes
            gc.collect()
            loaded_figures(path, queries, n)


def pytx_single(hashes: np.ndarray, queries: np.ndarray, mine: float) -> None:
    try:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex
    except ImportError as exc:
        print(f"    threatexchange PDQIndex: not installed ({exc})")
        return
    start = time.perf_counter()
    index = PDQIndex([(h.tobytes().hex(), i) for i, h in enumerate(hashes)])
    built = time.perf_counter() - start
    texts = [q.tobytes().hex() for q in queries]
    lat = np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        index.query(text)
        lat[i] = time.perf_counter() - start
    report(f"threatexchange PDQIndex (build {built:.0f} s)", lat, mine)


def live_changes(index: object, hashes: np.ndarray) -> None:
    """Add and remove single hashes on the full index: no rebuild, each well under a millisecond."""
    extra = uniform(1000)
    base = len(hashes)
    add = np.empty(1000)
    for i in range(1000):
        start = time.perf_counter()
        index.add([base + i], extra[i : i + 1])  # type: ignore[attr-defined]
        add[i] = time.perf_counter() - start
    rem = np.empty(1000)
    for i in range(1000):
        start = time.perf_counter()
        index.remove([i * 7])  # type: ignore[attr-defined]
        rem[i] = time.perf_counter() - start
    found = index.search(extra[:5], 0)  # type: ignore[attr-defined]
    assert all(any(d == 0 for _, d in hits) for hits in found), "an added hash was not found"
    print(f"  add one: median {np.median(add) * 1e6:.1f} us, max {add.max() * 1e6:.1f} us; "
          f"remove one: median {np.median(rem) * 1e6:.1f} us, max {rem.max() * 1e6:.1f} us")  # fmt: skip


LOADER = """
import sys, time, numpy as np
def rss():
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmRSS'))
from hashbank.index import HammingIndex
before = rss()
start = time.perf_counter()
index = HammingIndex.load(sys.argv[1])
loaded = time.perf_counter() - start
q = np.load(sys.argv[2])
start = time.perf_counter()
index.search(q[:1], 31)
first = time.perf_counter() - start
index.search(q, 31)
mapped = rss() - before
for array in index._base.arrays.values():  # every page of the index resident, as in a busy server
    int(np.asarray(array).view(np.uint8)[:: 4096].sum())
print(loaded, first, mapped, rss() - before)
"""


def loaded_figures(path: Path, queries: np.ndarray, n: int) -> None:
    qfile = path.with_suffix(".npy")
    np.save(qfile, queries)
    out = subprocess.run([sys.executable, "-c", LOADER, str(path), str(qfile)], capture_output=True, text=True)
    if out.returncode:
        print(f"  load: failed: {out.stderr[-500:]}")
        return
    loaded, first, mapped, full = map(float, out.stdout.split())
    print(f"  load of the saved index in a fresh process: {loaded * 1000:.0f} ms (first query {first * 1000:.1f} ms)")
    print(f"  resident memory: {mapped / n:.1f} bytes/hash after {len(queries)} queries, "
          f"{full / n:.1f} bytes/hash with every page of the index resident")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--kinds", default="uniform,clustered")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flat-queries", type=int, default=50, help="faiss Flat is slow: time it on this many")
    parser.add_argument("--pytx-max", type=int, default=1_000_000, help="largest N to build pytx's index at")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    for n in sizes:
        for kind in kinds:
            run(n, kind, args, last=n == sizes[-1] and kind == kinds[0])
            gc.collect()
    print(f"\nRSS of the bench process at the end: {rss() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
