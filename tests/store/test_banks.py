"""Banks, entries, categories and the schema, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from hashbank.settings import data_dir, database_url
from hashbank.store import AlreadyExists, NewEntry, NotFound, Store, open_store

PDQ_A = "f" * 64
PDQ_B = "0123456789abcdef" * 4


def test_default_store_lives_in_hashbank_home(hashbank_home: Path) -> None:
    assert data_dir() == hashbank_home and hashbank_home.is_dir()
    assert database_url() == f"sqlite:///{hashbank_home / 'hashbank.db'}"
    with open_store() as store:
        store.create_bank("home")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (hashbank_home / "hashbank.db").is_file()


def test_open_twice_migrates_once_to_head(store_url: str) -> None:
    from alembic.script import ScriptDirectory

    from hashbank.store.engine import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    for _ in range(2):
        with open_store(store_url) as store, store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_bank_lifecycle(store: Store) -> None:
    bank = store.create_bank("ncmec", description="hotline list", thresholds={"pdq": 20})
    assert (bank.name, bank.taxonomy, bank.enabled, bank.thresholds) == ("ncmec", "vics", True, {"pdq": 20})
    with pytest.raises(AlreadyExists, match="already exists"):
        store.create_bank("ncmec")
    with pytest.raises(ValueError, match="unknown signal"):
        store.create_bank("x", thresholds={"nope": 3})
    with pytest.raises(ValueError, match="taxonomy"):
        store.create_bank("x", taxonomy="martian")
    with pytest.raises(NotFound, match="no bank named 'missing'") as caught:
        store.get_bank("missing")
    assert isinstance(caught.value, KeyError) and str(caught.value) == "no bank named 'missing'"
    store.create_bank("other")
    assert [b.name for b in store.list_banks()] == ["ncmec", "other"]
    assert store.rename_bank("other", "renamed").name == "renamed"
    with pytest.raises(AlreadyExists):
        store.rename_bank("renamed", "ncmec")
    assert store.set_bank_enabled("renamed", False).enabled is False
    assert store.update_bank("renamed", description="d", thresholds={"pdq": 8}).thresholds == {"pdq": 8}
    assert store.delete_bank("renamed") == 0
    assert [b.name for b in store.list_banks()] == ["ncmec"]


def test_add_entries_normalises_and_is_idempotent(store: Store) -> None:
    store.create_bank("b")
    new = [
        NewEntry("pdq", PDQ_A.upper(), category="1", source="partner", external_id="e1", tags=("x", "y"), note="n"),
        NewEntry("md5", "A" * 32, content_id="c1"),
        NewEntry("md5", "a" * 31),
        NewEntry("sha1", "g" * 40),
        NewEntry("tlsh", "abc"),
        NewEntry("pdq", PDQ_B, category="9"),
        NewEntry("photodna", "  opaque+value==  ", category="unknown"),
    ]
    result = store.add_entries("b", new, batch_size=2)
    assert (result.added, result.existing) == (3, 0)
    assert [p for p, _ in result.errors] == [2, 3, 4, 5]
    assert "32 hex" in result.errors[0][1] and "hexadecimal" in result.errors[1][1]
    assert "unknown signal type 'tlsh'" in result.errors[2][1] and "category '9'" in result.errors[3][1]
    again = store.add_entries("b", [NewEntry("pdq", PDQ_A), NewEntry("md5", "a" * 32), NewEntry("pdq", PDQ_B)])
    assert (again.added, again.existing, again.errors) == (1, 2, [])
    stored = {(e.signal, e.value): e for e in store.entries("b")}
    assert set(stored) == {("pdq", PDQ_A), ("md5", "a" * 32), ("photodna", "opaque+value=="), ("pdq", PDQ_B)}
    first = stored["pdq", PDQ_A]
    assert (first.category, first.source, first.external_id, first.tags, first.note, first.added_by) == (
        "1",
        "partner",
        "e1",
        ("x", "y"),
        "n",
        "cli",
    )
    assert stored["md5", "a" * 32].content_id == "c1" and stored["md5", "a" * 32].tags == ()
    assert store.stats("b") == {
        "entries": 4,
        "enabled_entries": 4,
        "by_signal": {"md5": 1, "pdq": 2, "photodna": 1},
        "by_category": {"1": 1, "None": 2, "unknown": 1},
    }
    assert [e.value for e in store.find("pdq", PDQ_A.upper())] == [PDQ_A]


def test_same_value_in_two_banks_is_two_entries(store: Store) -> None:
    for name in ("one", "two"):
        store.create_bank(name)
        assert store.add_entries(name, [NewEntry("pdq", PDQ_A)]).added == 1
    assert sorted(e.bank for e in store.find("pdq", PDQ_A)) == ["one", "two"]
    assert [e.bank for e in store.find("pdq", PDQ_A, bank="two")] == ["two"]


def test_categories_per_taxonomy(store: Store) -> None:
    store.create_bank("vics")
    store.create_bank("uk", taxonomy="uk")
    store.create_bank("own", taxonomy="custom", categories={"terror": "terrorist content"})
    assert store.add_entries("vics", [NewEntry("md5", f"{i:032x}", category=str(i)) for i in range(5)]).added == 5
    uk = store.add_entries("uk", [NewEntry("md5", f"{i:032x}", category=c) for i, c in enumerate("abCD")])
    assert uk.added == 3 and "'D'" in uk.errors[0][1]
    assert {e.category for e in store.entries("uk")} == {"A", "B", "C"}
    own = store.add_entries("own", [NewEntry("md5", "1" * 32, category="TERROR"), NewEntry("md5", "2" * 32, "1")])
    assert own.added == 1 and [e.category for e in store.entries("own")] == ["terror"]
    store.update_bank("own", categories={"terror": "terrorist content", "spam": "spam"})
    assert store.add_entries("own", [NewEntry("md5", "3" * 32, category="spam")]).added == 1


def test_update_disable_release_and_delete_entries(store: Store) -> None:
    from datetime import datetime, timedelta

    store.create_bank("b")
    store.add_entries("b", [NewEntry("pdq", PDQ_A), NewEntry("pdq", PDQ_B)])
    a, b = list(store.entries("b"))
    assert store.update_entries("b", [a.id], category="2", note="regraded", tags=["t"]) == 1
    with pytest.raises(ValueError, match="category"):
        store.update_entries("b", [a.id], category="Z")
    until = datetime(2030, 1, 1)
    assert store.update_entries("b", [b.id], disabled_until=until) == 1
    a, b = list(store.entries("b"))
    assert (a.category, a.note, a.tags, b.enabled, b.disabled_until) == ("2", "regraded", ("t",), False, until)
    assert store.release_expired(now=until - timedelta(days=1)) == 0
    assert store.release_expired(now=until) == 1
    assert all(e.enabled and e.disabled_until is None for e in store.entries("b"))
    assert store.delete_entries("b", [a.id]) == 1
    assert [e.id for e in store.entries("b")] == [b.id]
    ops = [(c.op, c.entry_id) for c in store.changes()]
    assert ops == [("add", a.id), ("add", b.id), ("update", a.id), ("update", b.id), ("update", b.id), ("delete", a.id)]


def test_content_groups_a_files_signals(store: Store, shared_data: Path) -> None:
    from hashbank.signals.compute import hash_file
    from hashbank.store.files import entries_for

    store.create_bank("b")
    result = hash_file(shared_data / "kodak24" / "images" / "kodim01.png")
    entries, skipped = entries_for(result, category="1")
    assert skipped == [] and store.add_entries("b", entries).added == 4
    grouped = store.content("b", result.sha256)
    assert {e.signal: e.value for e in grouped} == result.signals
    assert {e.category for e in grouped} == {"1"}


def test_flat_image_pdq_is_left_out() -> None:
    from hashbank.signals.compute import HashResult
    from hashbank.store.files import entries_for

    flat = HashResult(path="flat.png", signals={"md5": "0" * 32, "pdq": "0" * 64}, quality={"pdq": 0})
    entries, skipped = entries_for(flat)
    assert [e.signal for e in entries] == ["md5"] and skipped == ["pdq quality 0 is below 50"]


def test_migrations_build_exactly_the_tables_the_code_uses(store: Store) -> None:
    """schema.py (what the code queries) and the Alembic chain (what databases get) must not drift apart."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hashbank.store.schema import metadata

    def ours(name: str, kind: str, *_: object) -> bool:  # the service's tables have their own module
        return kind != "table" or name in metadata.tables

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": ours})
        assert compare_metadata(context, metadata) == []


def test_hit_rows_report_what_get_entries_does(store: Store) -> None:
    """The matcher's per-hit lookup (through the driver) agrees with get_entries, on both backends."""
    store.create_bank("hits")
    store.create_bank("other")
    store.add_entries("hits", [NewEntry("pdq", PDQ_A, category="1"), NewEntry("md5", "a" * 32)])
    store.add_entries("other", [NewEntry("pdq", PDQ_B)])
    ids = [e.id for e in store.entries("hits")] + [e.id for e in store.entries("other")]
    store.update_entries("hits", ids[1:2], enabled=False)
    expected = {e.id: (e.id, e.bank, e.category, e.signal, e.value, e.enabled) for e in store.get_entries(ids)}
    assert {row[0]: row for row in store.hit_rows([*ids, 10**9])} == expected
    assert [row[5] for row in sorted(store.hit_rows(ids))] == [True, False, True]
    assert store.hit_rows([]) == []
