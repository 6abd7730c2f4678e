"""Exact, live radius search in Hamming space (PDQ and other 256-bit hashes).

Three parts, so a change touches only what changed:

* the *base*: an immutable chained pair index (see ``_hamming.c``) built in
  one pass, saved to one file and memory-mapped on load;
* the *delta*: hashes added since, searched by brute force while small;
* *tombstones*: one bit per base item removed since.

``compact()`` folds delta and tombstones into a new base; it runs when the
delta outgrows ``delta_limit`` (bulk adds build the base at once) and on save.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from hashbank.index import _hamming
from hashbank.index.arrays import load_arrays, packed_empty, save_arrays

Hits = list[list[tuple[int, int]]]
GROUPS = 1 << 16  # groups per table: one per 16-bit piece value
PAD = 16
LAYOUT = 3  # saved files of another layout are refused, not misread


class _Base:
    """The arrays of one built base and the C object searching them."""

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.m, self.n = int(meta["m"]), int(meta["n"])
        self.arrays = arrays
        self.ids: np.ndarray = arrays["ids"]
        self.dead = np.zeros((self.n + 7) // 8 or 1, dtype=np.uint8)
        self.dead_count = 0
        t, links = range(self.m), range(self.m - 1)
        self.core = _hamming.Base(
            self.m, self.n, [arrays[f"off{i}"] for i in t], [arrays[f"f{i}"] for i in t],
            [arrays[f"q{i}"] for i in links], [arrays[f"bslot{i}"] for i in links], [arrays[f"bhi{i}"] for i in links],
            arrays["last"], arrays["id_next"], self.ids, self.ids.dtype.itemsize, self.dead,
        )  # fmt: skip

    @classmethod
    def build(cls, ids: np.ndarray, hashes: np.ndarray) -> _Base:
        """Base over ``hashes`` (rows) for unique ``ids``, sorted here by id."""
        order = np.argsort(ids, kind="stable")
        ids, hashes = ids[order], np.ascontiguousarray(hashes[order])
        n, m = len(ids), hashes.shape[1] // 2
        small = n == 0 or (ids.min() >= 0 and ids.max() < 2**32)
        specs: dict[str, tuple[int, type]] = {"ids": (n, np.uint32 if small else np.int64)}
        for t in range(m):
            specs[f"off{t}"] = (GROUPS + 1, np.uint32)
            specs[f"f{t}"] = (n + PAD, np.uint16)
            if t + 1 < m:
                specs[f"q{t}"] = (n, np.uint8)
        specs["last"] = (n, np.uint32)
        specs["id_next"] = (n, np.uint32)
        arrays = packed_empty(specs)
        arrays["ids"][:] = ids
        t, links = range(m), range(m - 1)
        big = _hamming.build(
            hashes, n, m, [arrays[f"off{i}"] for i in t], [arrays[f"f{i}"] for i in t],
            [arrays[f"q{i}"] for i in links], arrays["last"], arrays["id_next"],
        )  # fmt: skip
        for i, (slots, high) in enumerate(big):
            arrays[f"bslot{i}"] = np.frombuffer(slots, np.uint32)
            arrays[f"bhi{i}"] = np.frombuffer(high, np.uint32)
        return cls({"m": m, "n": n}, arrays)

    def hashes(self) -> np.ndarray:
        """Every item's hash, in id order (the base keeps no separate copy)."""
        out = np.empty((self.n, self.m * 2), np.uint8)
        self.core.extract(out)
        return out

    def slot(self, item_id: int) -> int:
        """Position of ``item_id`` in the id node, or -1."""
        if self.n == 0 or item_id < 0 or (self.ids.dtype == np.uint32 and item_id >= 2**32):
            return -1
        # A scalar of the array's own type: a Python int makes numpy convert all n ids (18 ms at 10M).
        k = int(np.searchsorted(self.ids, self.ids.dtype.type(item_id)))
        return k if k < self.n and int(self.ids[k]) == item_id else -1

    def is_dead(self, k: int) -> bool:
        return bool(self.dead[k >> 3] & (1 << (k & 7)))

    def kill(self, k: int) -> None:
        self.dead[k >> 3] |= np.uint8(1 << (k & 7))
        self.dead_count += 1

    def live(self) -> np.ndarray:
        """Boolean mask of the items not removed."""
        return ~np.unpackbits(self.dead, bitorder="little")[: self.n].astype(bool)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values()) + self.dead.nbytes


class HammingIndex:
    """Every stored hash within a radius of a query, exactly; ids are int64."""

    def __init__(self, bits: int = 256, *, delta_limit: int = 16384, auto_compact: bool = True) -> None:
        if bits <= 0 or bits % 32 or bits > 512:
            raise ValueError(f"bits must be a positive multiple of 32 up to 512, got {bits}")
        self.bits = bits
        self.nbytes_per_hash = bits // 8
        self.delta_limit = delta_limit
        #: False when the owner compacts with ``compacted()`` off to the side (a live server).
        self.auto_compact = auto_compact
        self._base: _Base | None = None
        self._dhash = np.empty((0, self.nbytes_per_hash), np.uint8)
        self._dids = np.empty(0, np.int64)
        self._dn = 0
        self._drow: dict[int, int] = {}

    # ---- size and membership ------------------------------------------------
    def __len__(self) -> int:
        base = self._base
        return (base.n - base.dead_count if base else 0) + self._dn

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, int | np.integer):
            return False
        i = int(item_id)
        if i in self._drow:
            return True
        k = self._base.slot(i) if self._base else -1
        return k >= 0 and not self._base.is_dead(k)

    # ---- changes ------------------------------------------------------------
    def _check(
        self, ids: Iterable[int] | np.ndarray, hashes: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if hashes is None:
            return ids, np.empty((0, self.nbytes_per_hash), np.uint8)
        hashes = np.asarray(hashes, dtype=np.uint8)
        if hashes.ndim != 2 or hashes.shape[1] != self.nbytes_per_hash or len(hashes) != len(ids):
            raise ValueError(f"hashes must be an array of shape ({len(ids)}, {self.nbytes_per_hash}) of uint8")
        return ids, hashes

    def add(self, ids: Sequence[int] | np.ndarray, hashes: np.ndarray) -> None:
        """Add (or replace) items; a batch larger than the delta limit rebuilds the base at once."""
        ids, hashes = self._check(ids, hashes)
        if len(ids) > self.delta_limit:
            self._rebuild(ids, hashes)
            return
        for item_id, row in zip(ids.tolist(), hashes, strict=True):
            self._remove_one(item_id)
            if self._dn == len(self._dids):
                cap = max(64, 2 * self._dn)
                self._dhash = np.resize(self._dhash, (cap, self.nbytes_per_hash))
                self._dids = np.resize(self._dids, cap)
            self._dhash[self._dn] = row
            self._dids[self._dn] = item_id
            self._drow[item_id] = self._dn
            self._dn += 1
        if self.auto_compact and self._dn > self.delta_limit:
            self.compact()

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove items by id; returns how many were present."""
        return sum(self._remove_one(i) for i in self._check(ids)[0].tolist())

    def _remove_one(self, item_id: int) -> bool:
        row = self._drow.pop(item_id, None)
        if row is not None:
            last = self._dn - 1
            if row != last:
                self._dhash[row] = self._dhash[last]
                moved = int(self._dids[last])
                self._dids[row] = moved
                self._drow[moved] = row
            self._dn = last
            return True
        if self._base is None:
            return False
        k = self._base.slot(item_id)
        if k < 0 or self._base.is_dead(k):
            return False
        self._base.kill(k)
        return True

    def compact(self) -> None:
        """Fold the delta and tombstones into a freshly built base."""
        self._rebuild()

    @property
    def pending(self) -> int:
        """Changes since the base was built (delta rows and tombstones): what a compaction folds in."""
        return self._dn + (self._base.dead_count if self._base else 0)

    def compacted(self) -> HammingIndex:
        """A new index holding exactly this one's items in a fresh base; this one is only read, so
        searches on it can go on while the new one builds (at 10M, seconds)."""
        fresh = HammingIndex(self.bits, delta_limit=self.delta_limit, auto_compact=self.auto_compact)
        fresh._base = _Base.build(*self._live())
        return fresh

    def _live(self, ids: np.ndarray | None = None, hashes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every live (id, hash): base, delta, then ``ids``; later rows replace earlier ones."""
        parts_ids, parts_hashes = [], []
        if self._base is not None and self._base.n:
            live = self._base.live()
            parts_ids.append(self._base.ids[live].astype(np.int64))
            parts_hashes.append(self._base.hashes()[live])
        parts_ids.append(self._dids[: self._dn])
        parts_hashes.append(self._dhash[: self._dn])
        if ids is not None and hashes is not None:
            parts_ids.append(ids)
            parts_hashes.append(hashes)
        all_ids, all_hashes = np.concatenate(parts_ids), np.concatenate(parts_hashes)
        _, last = np.unique(all_ids[::-1], return_index=True)
        keep = len(all_ids) - 1 - last
        return all_ids[keep], all_hashes[keep]

    def _rebuild(self, ids: np.ndarray | None = None, hashes: np.ndarray | None = None) -> None:
        self._base = _Base.build(*self._live(ids, hashes))
        self._dhash = np.empty((0, self.nbytes_per_hash), np.uint8)
        self._dids = np.empty(0, np.int64)
        self._dn = 0
        self._drow = {}

    # ---- search ---------------------------------------------------------------
    def search(self, hashes: np.ndarray | bytes, radius: int = 31) -> Hits:
        """Per query, every (id, distance) with distance <= radius, in no particular order."""
        if radius < 0:
            raise ValueError("radius must be >= 0")
        if isinstance(hashes, bytes | bytearray | memoryview):
            hashes = np.frombuffer(hashes, np.uint8)
        queries = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, self.nbytes_per_hash)
        radius = min(int(radius), self.bits)
        buf = queries.data
        hits: Hits
        if self._base is not None and self._base.n:
            hits = self._base.core.search(buf, radius)
        else:
            hits = [[] for _ in range(len(queries))]
        if self._dn:
            extra = _hamming.scan(self._dhash, self._dids, self._dn, self.nbytes_per_hash, buf, radius)
            for found, more in zip(hits, extra, strict=True):
                found += more
        return hits

    # ---- persistence ------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Compact, then write one file (replaced atomically) that ``load`` maps."""
        if self._dn or self._base is None or self._base.dead_count:
            self.compact()
        assert self._base is not None
        base = self._base
        meta = {"kind": "hamming", "layout": LAYOUT, "bits": self.bits, "m": base.m, "n": base.n}
        save_arrays(path, meta, self._base.arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, delta_limit: int = 16384) -> HammingIndex:
        """Map a saved index read-only: shared between processes, nothing read up front."""
        meta, arrays = load_arrays(path)
        if meta.get("kind") != "hamming":
            raise ValueError(f"{path}: not a Hamming index")
        if meta.get("layout") != LAYOUT:
            found = meta.get("layout", 1)
            raise ValueError(f"{path}: saved by another version of hashbank (layout {found}); rebuild it")
        index = cls(int(meta["bits"]), delta_limit=delta_limit)
        index._base = _Base(meta, arrays)
        return index

    @property
    def nbytes(self) -> int:
        """Bytes held by the index arrays (mapped or not)."""
        base = self._base.nbytes if self._base else 0
        return base + self._dhash.nbytes + self._dids.nbytes
