"""Export -> import is lossless for every field a format carries, on both backends."""

from __future__ import annotations

import io

import pytest

from hashbank.exchange import ReadOptions, export_bank, import_stream
from hashbank.store import NewEntry, Store

#: Which entry fields each format carries.
CARRIED = {
    "te": ("signal", "value"),
    "csv": ("signal", "value", "category", "source", "external_id", "content_id", "tags", "note", "enabled"),
    "vics": ("signal", "value", "category", "content_id", "tags", "note"),
}


def sample() -> list[NewEntry]:
    """Entries exercising every field: content groups, opaque values, awkward text."""
    out = []
    for i in range(30):
        g = i // 3  # one piece of content: same grading and notes for its three hashes
        signal, value = [("md5", f"{i:032x}"), ("sha1", f"{i:040x}"), ("pdq", f"{i:064x}")][i % 3]
        out.append(
            NewEntry(
                signal,
                value,
                category=str(g % 5),
                source='hotline, "A"',
                external_id=f"media-{g}",
                content_id=f"media-{g}",
                tags=("IsDistributed", "series x") if g % 2 else (),
                note="two\nlines; é" if g % 4 == 0 else None,
                enabled=i % 7 != 0,
            )
        )
    out.append(NewEntry("photodna", "QUJD+/==", category="1", external_id="pd", content_id="pd", note="n"))
    out.append(NewEntry("sha256", "ab" * 32, category="2", external_id="s2", content_id="s2"))
    return out


def snapshot(store: Store, bank: str, fields: tuple[str, ...]) -> list[tuple]:
    return sorted(tuple(getattr(e, f) for f in fields) for e in store.entries(bank))


@pytest.mark.parametrize("fmt", sorted(CARRIED))
def test_export_then_import_is_lossless(store: Store, fmt: str) -> None:
    store.create_bank("src")
    store.create_bank("dst")
    new = sample()
    if fmt == "vics":  # VICS has no per-hash enabled flag and keys media by MediaID
        new = [NewEntry(**{**{f: getattr(e, f) for f in e.__slots__}, "enabled": True}) for e in new]
    assert store.add_entries("src", new).added == len(new)
    text = io.StringIO()
    assert export_bank(store, "src", text, fmt) == len(new)
    data = text.getvalue().encode()
    result = import_stream(store, "dst", io.BytesIO(data), fmt)
    assert (result.added, result.error_count) == (len(new), 0)
    assert snapshot(store, "dst", CARRIED[fmt]) == snapshot(store, "src", CARRIED[fmt])
    assert import_stream(store, "dst", io.BytesIO(data), fmt).added == 0


def test_export_since_a_cursor_gives_only_what_changed(store: Store) -> None:
    store.create_bank("b")
    store.add_entries("b", [NewEntry("md5", f"{i:032x}") for i in range(5)])
    cursor = store.last_seq()
    store.add_entries("b", [NewEntry("md5", "f" * 32)])
    first = next(iter(store.entries("b")))
    store.update_entries("b", [first.id], category="3")
    out = io.StringIO()
    assert export_bank(store, "b", out, "te", since=cursor) == 2
    assert out.getvalue() == f"md5 {first.value}\nmd5 {'f' * 32}\n"


def test_import_defaults_fill_what_the_file_leaves_out(store: Store) -> None:
    store.create_bank("uk", taxonomy="uk")
    data = b"ff" * 16 + b"\n" + b"sha256 " + b"ab" * 32 + b"\n"
    result = import_stream(store, "uk", io.BytesIO(data), "te", options=ReadOptions(category="b", source="mail"))
    assert result.added == 2
    assert {(e.signal, e.category, e.source) for e in store.entries("uk")} == {
        ("md5", "B", "mail"),
        ("sha256", "B", "mail"),
    }
