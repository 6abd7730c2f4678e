"""The change feed: complete, strictly ordered, and enough to rebuild every bank."""

from __future__ import annotations

import threading

from hashbank.store import Change, NewEntry, Store

FIELDS = (
    "bank",
    "signal",
    "value",
    "category",
    "source",
    "external_id",
    "content_id",
    "tags",
    "note",
    "added_at",
    "added_by",
    "disabled_until",
)


def replay(changes: list[Change]) -> dict[int, tuple]:
    """What a consumer holds after applying the feed: entry id -> fields and effective enabled."""
    state: dict[int, tuple] = {}
    for change in changes:
        if change.op == "delete":
            state.pop(change.entry_id)
        else:
            state[change.entry_id] = (*(getattr(change, f) for f in FIELDS), change.enabled)
    return state


def current(store: Store) -> dict[int, tuple]:
    out = {}
    for bank in store.list_banks():
        for e in store.entries(bank.name):
            out[e.id] = (*(getattr(e, f) for f in FIELDS), e.enabled and bank.enabled)
    return out


def read_all(store: Store, page: int) -> list[Change]:
    """The whole feed, paged with the cursor as a consumer would."""
    out: list[Change] = []
    while batch := store.changes(since=out[-1].seq if out else 0, limit=page):
        out.extend(batch)
    return out


def test_replaying_the_feed_from_zero_rebuilds_every_bank(store: Store) -> None:
    store.create_bank("a")
    store.create_bank("b", taxonomy="uk")
    store.add_entries(
        "a", [NewEntry("pdq", f"{i:064x}", category=str(i % 5), tags=("t",)) for i in range(50)], batch_size=7
    )
    store.add_entries("b", [NewEntry("md5", f"{i:032x}", category="A", content_id=f"c{i // 2}") for i in range(20)])
    ids = [e.id for e in store.entries("a")]
    store.update_entries("a", ids[:10], category="4", note="regraded")
    store.update_entries("a", ids[10:15], enabled=False)
    store.delete_entries("a", ids[20:30])
    store.set_bank_enabled("b", False)
    store.rename_bank("b", "b2")
    store.add_entries("b2", [NewEntry("sha1", "1" * 40)])
    store.create_bank("gone")
    store.add_entries("gone", [NewEntry("md5", "f" * 32)])
    store.delete_bank("gone")
    store.add_entries("a", [NewEntry("pdq", f"{i:064x}") for i in range(25, 30)])  # re-add deleted values

    feed = read_all(store, page=13)
    seqs = [c.seq for c in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[-1] == store.last_seq()
    assert replay(feed) == current(store)
    assert len(current(store)) == 40 + 5 + 21
    # Disabled bank: its entries are in the feed as disabled; names follow the rename.
    b2 = [c for c in feed if c.bank_id == store.get_bank("b2").id]
    assert {c.bank for c in b2[-21:]} == {"b2"} and not any(c.enabled for c in b2[-21:])
    # A cursor in the middle gives exactly the rest; one bank's feed is that bank's changes only.
    middle = feed[len(feed) // 2].seq
    assert store.changes(since=middle, limit=10**6) == [c for c in feed if c.seq > middle]
    assert [c.seq for c in store.changes(bank="a", limit=10**6)] == [c.seq for c in feed if c.bank == "a"]


def test_enable_after_disable_is_one_update_per_entry(store: Store) -> None:
    store.create_bank("a")
    store.add_entries("a", [NewEntry("pdq", f"{i:064x}") for i in range(3)])
    cursor = store.last_seq()
    store.set_bank_enabled("a", False)
    store.set_bank_enabled("a", False)  # no change, nothing logged
    store.set_bank_enabled("a", True)
    assert [(c.op, c.enabled) for c in store.changes(since=cursor)] == [("update", False)] * 3 + [("update", True)] * 3


def test_concurrent_writers_give_one_ordered_feed(store: Store) -> None:
    for name in ("x", "y"):
        store.create_bank(name)

    def fill(name: str, offset: int) -> None:
        for start in range(0, 400, 50):
            new = [NewEntry("pdq", f"{offset + i:064x}") for i in range(start, start + 50)]
            store.add_entries(name, new, batch_size=25)

    threads = [threading.Thread(target=fill, args=(n, o)) for n, o in (("x", 0), ("y", 10_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    feed = read_all(store, page=97)
    assert [c.seq for c in feed] == sorted({c.seq for c in feed}) and len(feed) == 800
    assert replay(feed) == current(store)


def test_reading_the_feed_releases_entries_whose_disabled_until_has_passed(store: Store) -> None:
    from datetime import datetime, timedelta

    store.create_bank("a")
    store.add_entries("a", [NewEntry("pdq", f"{i:064x}") for i in range(3)])
    first, second, _ = (e.id for e in store.entries("a"))
    store.update_entries("a", [first], disabled_until=datetime(2000, 1, 1))  # already over
    store.update_entries("a", [second], disabled_until=datetime.now() + timedelta(days=365))
    cursor = store.last_seq()
    released = store.changes(since=cursor)
    assert [(c.op, c.entry_id, c.enabled, c.disabled_until) for c in released] == [("update", first, True, None)]
    assert store.changes(since=released[-1].seq) == []  # once
    assert [(e.enabled, e.disabled_until is None) for e in store.entries("a")] == [(True, True), (False, False),
                                                                                  (True, True)]  # fmt: skip
    assert replay(read_all(store, page=5)) == current(store)


def test_a_deleted_banks_feed_ends_in_its_tombstones(store: Store) -> None:
    store.create_bank("gone")
    store.add_entries("gone", [NewEntry("md5", f"{i:032x}") for i in range(4)])
    cursor = store.last_seq()
    store.delete_bank("gone")
    tail = store.changes(since=cursor, bank="gone")
    assert [(c.op, c.bank) for c in tail] == [("delete", "gone")] * 4
    assert replay(store.changes(bank="gone")) == {}
    store.create_bank("gone")  # a new bank of that name has its own, new feed
    assert store.changes(bank="gone") == []
