"""The one place that turns fingerprints into matches.

A :class:`Matcher` keeps, per signal, an index of every *enabled* entry of every
*enabled* bank: a Hamming index for PDQ, a set lookup for exact signals (md5,
sha1, sha256 and the opaque ones). The index is a cache of the store: the first
``catch_up`` reads the live entries after noting the change-log cursor, later
ones replay only the changes since. Changes carry the whole entry, so replaying
one already seen is harmless.

The index holds nothing but ids; a hit is looked up in the store (bank, category,
value, enabled), and kept in a small cache that the change-log replay empties
for every entry it touches: known content is uploaded again and again, and a
store read cost as much as the rest of a lookup. An entry disabled or deleted
stops matching once the replay has seen it (the index drops it then too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hashbank import signals
from hashbank.index import HammingIndex
from hashbank.signals.compute import HashResult
from hashbank.signals.pdq import PdqSignal
from hashbank.signals.pdq_core import DIHEDRAL_NAMES
from hashbank.store import Bank, Store

#: Signals searched by Hamming distance over their bytes; the rest match exactly.
HAMMING = {"pdq": 256}
MAX_THRESHOLD = 128
#: Hit entries' details kept between lookups, at most (the cache starts over when full).
HIT_CACHE = 65_536

#: Seconds between catch-ups that read the feed even though nothing seems to have changed.
RELEASE_EVERY = 1.0

HitRow = tuple[str, str | None, str, str, bool]  # bank, category, signal, value, enabled


@dataclass(frozen=True, slots=True)
class Match:
    """One stored entry that a query fingerprint hit.

    ``query_signal`` is the signal that matched, with the dihedral variant when
    it was a rotated or flipped form of the query (``pdq:rotate90``)."""

    bank: str
    entry_id: int
    category: str | None
    signal: str
    value: str
    distance: int
    query_signal: str

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class ExactIndex:
    """Value -> entry ids, for signals compared for equality."""

    def __init__(self) -> None:
        self._ids: dict[str, set[int]] = {}
        self._value: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._value)

    def add(self, entry_id: int, value: str) -> None:
        self.remove(entry_id)
        self._ids.setdefault(value, set()).add(entry_id)
        self._value[entry_id] = value

    def remove(self, entry_id: int) -> None:
        value = self._value.pop(entry_id, None)
        if value is not None:
            held = self._ids[value]
            held.discard(entry_id)
            if not held:
                del self._ids[value]

    def search(self, value: str) -> list[int]:
        return list(self._ids.get(value, ()))


class Matcher:
    """Store + indexes + per-bank thresholds + PDQ quality floor + dihedral lookup."""

    def __init__(self, store: Store, *, page: int = 10_000, delta_limit: int = 16_384) -> None:
        self.store = store
        self.page = page
        self.delta_limit = delta_limit
        self.cursor = -1  # nothing loaded yet
        self._hamming = self._new_hamming()
        self._exact: dict[str, ExactIndex] = {}
        self._banks: dict[str, Bank] = {}
        self._hit_rows: dict[int, HitRow] = {}
        self._radii: dict[str, int] = {}  # search radius per signal over all banks
        #: Bumped whenever entries may have changed: a store read begun before is not cached.
        self._epoch = 0
        self._lock = threading.RLock()  # searches vs. index changes
        self._updating = threading.Lock()  # one catch_up at a time
        self._state: tuple[object, ...] | None = None  # the store's feed_state at the last full catch-up
        self._full_by = 0.0

    # ---- keeping up with the store --------------------------------------------------------

    def catch_up(self) -> int:
        """Bring the indexes up to the store's newest change; returns how many entries or
        changes were applied. When neither the change log nor a bank has changed, only that is
        read (two small reads, not the feed's queries), except once every ``RELEASE_EVERY`` seconds:
        reading the feed is also what releases entries whose ``disabled_until`` has passed."""
        with self._updating:
            state = self.store.feed_state()
            if self.cursor >= 0 and state == self._state and time.monotonic() < self._full_by:
                return 0
            self._full_by = time.monotonic() + RELEASE_EVERY
            loaded = self._load() if self.cursor < 0 else 0
            banks = {bank.name: bank for bank in self.store.list_banks()}
            applied = 0
            while page := self.store.changes(since=self.cursor, limit=self.page):
                with self._lock:
                    self._epoch += 1
                    for change in page:
                        self._hit_rows.pop(change.entry_id, None)
                        if change.op != "delete" and change.enabled:
                            self._add([change.entry_id], [change.signal], [change.value])
                        else:
                            self._remove(change.entry_id, change.signal)
                    self.cursor = page[-1].seq
                applied += len(page)
                self._compact()
            with self._lock:
                if banks != self._banks:  # renamed, say: cached rows name banks
                    self._epoch += 1
                    self._hit_rows.clear()
                    self._radii = {}
                self._banks = banks
            self._state = state
            return loaded + applied

    def _load(self) -> int:
        """First load: the live entries, read after noting the cursor (catch_up then replays the
        changes made meanwhile). Built off to the side and swapped in, so searches never wait for
        the minutes a big bank takes; hex becomes index rows one page at a time (no list of
        millions of strings)."""
        cursor = self.store.last_seq()
        hamming = self._new_hamming()
        exact: dict[str, ExactIndex] = {}
        parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {name: ([], []) for name in hamming}
        loaded = 0
        for rows in self.store.live_values():
            by_signal: dict[str, tuple[list[int], list[str]]] = {}
            for entry_id, signal, value in rows:
                ids, values = by_signal.setdefault(signal, ([], []))
                ids.append(entry_id)
                values.append(value)
            for signal, (ids, values) in by_signal.items():
                if signal in hamming:
                    parts[signal][0].append(np.asarray(ids, np.int64))
                    parts[signal][1].append(_hex_rows(values, hamming[signal]))
                else:
                    index = exact.setdefault(signal, ExactIndex())
                    for entry_id, value in zip(ids, values, strict=True):
                        index.add(entry_id, value)
            loaded += len(rows)
        for name, (ids, rows) in parts.items():
            if ids:
                hamming[name].add(np.concatenate(ids), np.concatenate(rows))
            ids.clear()
            rows.clear()
        with self._lock:
            self._hamming, self._exact, self.cursor = hamming, exact, cursor
        return loaded

    def _new_hamming(self) -> dict[str, HammingIndex]:
        # No compaction inside add(): it would rebuild under the lock searches wait on (16 s at 10M).
        return {
            name: HammingIndex(bits, delta_limit=self.delta_limit, auto_compact=False) for name, bits in HAMMING.items()
        }

    def _compact(self) -> None:
        """Fold an index's changes into a fresh base off to the side, then swap it in. Only catch_up
        changes the indexes (one at a time), so nothing changes while the new one builds."""
        for name, index in list(self._hamming.items()):
            if index.pending > self.delta_limit:
                fresh = index.compacted()
                with self._lock:
                    self._hamming[name] = fresh

    def _add(self, ids: list[int], signal_names: list[str], values: list[str]) -> None:
        for entry_id, signal, value in zip(ids, signal_names, values, strict=True):
            if signal in self._hamming:
                index = self._hamming[signal]
                index.add([entry_id], _hex_rows([value], index))
            else:
                self._exact.setdefault(signal, ExactIndex()).add(entry_id, value)

    def _remove(self, entry_id: int, signal: str) -> None:
        if signal in self._hamming:
            self._hamming[signal].remove([entry_id])
        elif signal in self._exact:
            self._exact[signal].remove(entry_id)

    def __len__(self) -> int:
        return sum(map(len, self._hamming.values())) + sum(map(len, self._exact.values()))

    # ---- matching -------------------------------------------------------------------------

    def match(
        self,
        result: HashResult,
        banks: Sequence[str] | None = None,
        threshold: int | None = None,
        dihedral: bool = False,
    ) -> list[Match]:
        """Matches of a hashed file. PDQ below its quality floor is not matched (the reference's
        advice: flat images collide); dihedral variants are searched when the result has them
        and ``dihedral`` is set."""
        if not result.ok:
            return []
        queries: list[tuple[str, str, str]] = []
        for name, value in result.signals.items():
            if name == "pdq" and result.quality.get(name, 100) < PdqSignal.quality_floor:
                continue
            queries.append((name, value, name))
            if dihedral and result.variants.get(name):
                queries += [
                    (name, variant, f"{name}:{label}")
                    for label, variant in zip(DIHEDRAL_NAMES, result.variants[name], strict=False)
                    if label != "original"
                ]
        return self._search(queries, banks, threshold)

    def match_values(
        self, values: Mapping[str, str], banks: Sequence[str] | None = None, threshold: int | None = None
    ) -> list[Match]:
        """Matches of fingerprints given as text ({"pdq": hex, "md5": hex, ...}); a bad value or
        unknown signal raises ValueError naming it."""
        queries = []
        for name, text in values.items():
            signal = signals.get(name)
            queries.append((signal.name, signal.parse(text), signal.name))
        return self._search(queries, banks, threshold)

    def _search(
        self, queries: Iterable[tuple[str, str, str]], banks: Sequence[str] | None, threshold: int | None
    ) -> list[Match]:
        if threshold is not None and not 0 <= threshold <= MAX_THRESHOLD:
            raise ValueError(f"threshold must be between 0 and {MAX_THRESHOLD}, got {threshold}")
        wanted = set(banks) if banks is not None else None
        hits: dict[int, tuple[int, str]] = {}  # entry id -> (distance, query signal)
        with self._lock:
            for name, value, label in queries:
                found: Iterable[tuple[int, int]]
                if name in self._hamming:
                    radius = self._radius(name, wanted, threshold)
                    found = self._hamming[name].search(bytes.fromhex(value), radius)[0]
                elif name in self._exact:
                    found = ((entry_id, 0) for entry_id in self._exact[name].search(value))
                else:
                    continue
                for entry_id, distance in found:
                    if entry_id not in hits or distance < hits[entry_id][0]:
                        hits[entry_id] = (distance, label)
        if not hits:
            return []
        out = []
        for entry_id, (bank, category, signal, value, enabled) in self._rows(hits).items():
            distance, label = hits[entry_id]
            if self._accepts(bank, signal, enabled, distance, wanted, threshold):
                out.append(Match(bank, entry_id, category, signal, value, distance, label))
        if len(out) > 1:
            out.sort(key=lambda m: (m.distance, m.bank, m.entry_id))
        return out

    def _rows(self, ids: Iterable[int]) -> dict[int, HitRow]:
        """Details of hit entries, from the cache or the store (ids no longer stored are left out)."""
        cached, found, missing = self._hit_rows, {}, []
        for entry_id in ids:
            row = cached.get(entry_id)
            if row is None:
                missing.append(entry_id)
            else:
                found[entry_id] = row
        if missing:
            epoch = self._epoch
            read = {row[0]: row[1:] for row in self.store.hit_rows(missing)}
            found.update(read)
            with self._lock:
                if epoch == self._epoch:  # no change replayed meanwhile that this read may have missed
                    if len(cached) + len(read) > HIT_CACHE:
                        cached.clear()
                    cached.update(read)
        return found

    def _threshold(self, bank: Bank | None, signal: str) -> int:
        if bank is not None and signal in bank.thresholds:
            return int(bank.thresholds[signal])
        return signals.get(signal).default_threshold

    def _radius(self, signal: str, wanted: set[str] | None, threshold: int | None) -> int:
        if threshold is not None:
            return threshold
        if wanted is None:  # every bank: the same answer until the banks change
            radius = self._radii.get(signal)
            if radius is None:
                radius = self._radii[signal] = self._widest(signal, self._banks.values())
            return radius
        return self._widest(signal, [b for name, b in self._banks.items() if name in wanted])

    def _widest(self, signal: str, banks: Iterable[Bank]) -> int:
        return max([self._threshold(b, signal) for b in banks] + [self._threshold(None, signal)])

    def _accepts(
        self, bank_name: str, signal: str, enabled: bool, distance: int, wanted: set[str] | None, threshold: int | None
    ) -> bool:
        bank = self._banks.get(bank_name)
        if not enabled or bank is None or not bank.enabled:
            return False
        if wanted is not None and bank_name not in wanted:
            return False
        limit = threshold if threshold is not None else self._threshold(bank, signal)
        return distance <= limit


def _hex_rows(values: list[str], index: HammingIndex) -> np.ndarray:
    """Hex strings -> (n, bytes) uint8 rows in one conversion."""
    return np.frombuffer(bytes.fromhex("".join(values)), np.uint8).reshape(len(values), index.nbytes_per_hash)
