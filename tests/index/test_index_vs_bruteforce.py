"""HammingIndex against brute force: every neighbour within the radius, nothing else, through every change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashbank.index import HammingIndex

RNG = np.random.default_rng(20261125)
POP = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def random_hashes(n: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 32), dtype=np.uint8)


def near(base: np.ndarray, flips: int) -> np.ndarray:
    """``base`` with ``flips`` distinct random bits flipped in each row."""
    out = base.copy()
    for row in out:
        for bit in RNG.choice(256, size=flips, replace=False):
            row[bit >> 3] ^= np.uint8(1 << (bit & 7))
    return out


def clustered(families: int, size: int) -> np.ndarray:
    """Families of near-duplicates (within ~20 bits of a seed), as real hash lists have."""
    seeds = random_hashes(families)
    rows = [near(np.repeat(seeds[i : i + 1], size, axis=0), int(RNG.integers(0, 20))) for i in range(families)]
    return np.concatenate(rows)


def brute(ids: np.ndarray, hashes: np.ndarray, queries: np.ndarray, radius: int) -> list[set[tuple[int, int]]]:
    out = []
    for q in queries:
        dist = POP[np.bitwise_xor(hashes, q)].sum(1)
        keep = dist <= radius
        out.append(set(zip(ids[keep].tolist(), dist[keep].tolist(), strict=True)))
    return out


def queries_for(hashes: np.ndarray, count: int) -> np.ndarray:
    """Half near a stored hash (0-40 bits away), half random."""
    picks = hashes[RNG.integers(0, len(hashes), size=count // 2)]
    close = np.concatenate([near(picks[i : i + 1], int(RNG.integers(0, 41))) for i in range(len(picks))])
    return np.concatenate([close, random_hashes(count - len(close))])


def check(index: HammingIndex, ids: np.ndarray, hashes: np.ndarray, queries: np.ndarray, radius: int) -> None:
    got = [set(hits) for hits in index.search(queries, radius)]
    assert got == brute(ids, hashes, queries, radius)
    for hits in index.search(queries, radius):
        assert len(hits) == len(set(hits)), "an item reported twice"


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize("radius", [0, 31, 63, 90])
def test_search_equals_brute_force(kind: str, radius: int) -> None:
    hashes = random_hashes(50_000) if kind == "uniform" else clustered(2_000, 25)
    ids = RNG.permutation(len(hashes)).astype(np.int64) * 7 + 3
    index = HammingIndex()
    index.add(ids, hashes)
    assert len(index) == len(hashes)
    check(index, ids, hashes, queries_for(hashes, 200), radius)


def test_empty_and_single_entry() -> None:
    index = HammingIndex()
    assert len(index) == 0
    assert index.search(random_hashes(3), 31) == [[], [], []]
    one = random_hashes(1)
    index.add([42], one)
    assert len(index) == 1 and 42 in index
    assert index.search(one, 0) == [[(42, 0)]]
    assert index.search(near(one, 31), 31) == [[(42, 31)]]
    assert index.search(near(one, 32), 31) == [[]]


def test_single_entry_survives_save_and_load(tmp_path: Path) -> None:
    """python-threatexchange #1318: a one-entry index came back empty."""
    one = random_hashes(1)
    index = HammingIndex()
    index.add([7], one)
    index.save(tmp_path / "one.idx")
    loaded = HammingIndex.load(tmp_path / "one.idx")
    assert len(loaded) == 1 and loaded.search(one, 31) == [[(7, 0)]]


def test_duplicate_hashes_under_different_ids_are_all_found() -> None:
    h = random_hashes(1)
    index = HammingIndex()
    index.add([1, 2, 3], np.repeat(h, 3, axis=0))
    index.add(np.arange(10, 30_010), random_hashes(30_000))  # a bulk add builds the base around them
    assert sorted(index.search(h, 0)[0]) == [(1, 0), (2, 0), (3, 0)]


@pytest.mark.parametrize("delta_limit", [16, 16384])
def test_changes_match_brute_force_through_delta_and_compaction(delta_limit: int) -> None:
    """Adds, re-adds (an id takes its new hash), removes and remove-then-add, in small and bulk steps."""
    index = HammingIndex(delta_limit=delta_limit)
    truth: dict[int, np.ndarray] = {}

    def apply_add(ids: np.ndarray, hashes: np.ndarray) -> None:
        index.add(ids, hashes)
        truth.update(zip(ids.tolist(), hashes, strict=True))

    apply_add(np.arange(20_000), clustered(1_000, 20))
    for step in range(60):
        ids = RNG.integers(0, 25_000, size=int(RNG.integers(1, 40)))
        ids = np.unique(ids)
        if step % 3 == 0:
            gone = [i for i in ids.tolist() if i in truth]
            assert index.remove(ids) == len(gone)
            for i in gone:
                del truth[i]
        else:
            apply_add(ids, random_hashes(len(ids)) if step % 2 else near(random_hashes(1), 3).repeat(len(ids), 0))
    assert index.remove([10**9]) == 0  # unknown id
    removed = int(next(iter(truth)))
    index.remove([removed])
    back = random_hashes(1)
    index.add([removed], back)  # remove, then add the same id again
    truth[removed] = back[0]
    assert len(index) == len(truth)
    ids = np.fromiter(truth, np.int64)
    hashes = np.stack([truth[i] for i in ids.tolist()])
    check(index, ids, hashes, queries_for(hashes, 150), 31)
    check(index, ids, hashes, queries_for(hashes, 50), 63)


def test_save_load_is_mapped_and_stays_live(tmp_path: Path) -> None:
    hashes = clustered(500, 40)
    ids = np.arange(len(hashes), dtype=np.int64) + 1_000_000_000_000  # past 32 bits
    index = HammingIndex()
    index.add(ids, hashes)
    index.save(tmp_path / "pdq.idx")
    loaded = HammingIndex.load(tmp_path / "pdq.idx")
    assert len(loaded) == len(hashes)
    queries = queries_for(hashes, 100)
    check(loaded, ids, hashes, queries, 31)
    # changes after load go to the delta and tombstones; the mapped file is not written
    before = (tmp_path / "pdq.idx").read_bytes()
    loaded.remove(ids[:100])
    extra = random_hashes(50)
    loaded.add(np.arange(50), extra)
    assert (tmp_path / "pdq.idx").read_bytes() == before
    all_ids = np.concatenate([ids[100:], np.arange(50)])
    all_hashes = np.concatenate([hashes[100:], extra])
    check(loaded, all_ids, all_hashes, np.concatenate([queries, extra[:10]]), 31)
    # saving again (over the mapped file) and reloading keeps exactly that state
    loaded.save(tmp_path / "pdq.idx")
    check(HammingIndex.load(tmp_path / "pdq.idx"), all_ids, all_hashes, queries, 45)


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    index = HammingIndex()
    with pytest.raises(ValueError, match="shape"):
        index.add([1, 2], random_hashes(3))
    with pytest.raises(ValueError, match="shape"):
        index.add([1], np.zeros((1, 16), np.uint8))
    with pytest.raises(ValueError, match="radius"):
        index.search(random_hashes(1), -1)
    with pytest.raises(ValueError, match="multiple of 32 up to 512"):
        HammingIndex(bits=100)
    (tmp_path / "junk.idx").write_bytes(b"not an index at all")
    with pytest.raises(ValueError):
        HammingIndex.load(tmp_path / "junk.idx")


def test_compacted_copy_leaves_the_original_searchable() -> None:
    """A live server builds the new base off to the side: the old index must stay whole meanwhile."""
    hashes = clustered(300, 20)
    ids = np.arange(len(hashes), dtype=np.int64)
    index = HammingIndex(delta_limit=8, auto_compact=False)
    index.add(ids[:5000], hashes[:5000])
    for i in range(5000, 5100):  # one at a time: no compaction inside add()
        index.add([i], hashes[i : i + 1])
    index.remove(ids[:40])
    assert index.pending == 100 + 40
    fresh = index.compacted()
    assert fresh.pending == 0 and index.pending == 140
    queries = queries_for(hashes[40:5100], 100)
    for either in (index, fresh):
        check(either, ids[40:5100], hashes[40:5100], queries, 31)


def test_groups_over_256_items_keep_their_links(tmp_path: Path) -> None:
    """Thousands of near-identical hashes share most 16-bit pieces: their groups outgrow the one-byte
    link, whose high bits go to the side list. Search, compaction (which reads hashes back through
    the links) and save/load must all still be exact."""
    seeds = random_hashes(3)
    heavy = np.concatenate([near(np.repeat(seeds[i : i + 1], 700, axis=0), 4) for i in range(3)])
    hashes = np.concatenate([heavy, random_hashes(20_000)])
    ids = RNG.permutation(len(hashes)).astype(np.int64)
    index = HammingIndex()
    index.add(ids, hashes)
    assert sum(len(index._base.arrays[f"bslot{t}"]) for t in range(15)) > 0, "no group went over 256"
    queries = np.concatenate([near(seeds, 10), queries_for(hashes, 60)])
    for radius in (0, 31, 63):
        check(index, ids, hashes, queries, radius)
    index.remove(ids[:500])
    index.compact()
    check(index, ids[500:], hashes[500:], queries, 31)
    index.save(tmp_path / "heavy.idx")
    check(HammingIndex.load(tmp_path / "heavy.idx"), ids[500:], hashes[500:], queries, 31)


@pytest.mark.parametrize("bits", [32, 64, 128])
def test_shorter_hashes(bits: int) -> None:
    """Two pieces (32 bits) is the smallest chain: each piece's pair is the other one."""
    hashes = RNG.integers(0, 256, size=(5_000, bits // 8), dtype=np.uint8)
    ids = np.arange(len(hashes), dtype=np.int64)
    index = HammingIndex(bits=bits)
    index.add(ids, hashes)
    picks = hashes[:40].copy()
    picks[:, 0] ^= 0x11
    queries = np.concatenate([picks, RNG.integers(0, 256, size=(40, bits // 8), dtype=np.uint8)])
    for radius in (0, 3, bits // 8, bits // 4):
        got = [set(hits) for hits in index.search(queries, radius)]
        dist = POP[np.bitwise_xor(hashes[None, :, :], queries[:, None, :])].sum(2)
        assert got == [set(zip(ids[row <= radius].tolist(), row[row <= radius].tolist(), strict=True)) for row in dist]
