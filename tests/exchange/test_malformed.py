"""Bad input: a clear reason per line with its number, valid lines still load, stored entries untouched."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from hashbank.exchange import import_file, import_stream
from hashbank.store import NewEntry, Store, open_store

PDQ = "ab" * 32
GIB = 1 << 30


class HugeLine(io.RawIOBase):
    """``size`` bytes of 'a' without a newline, then ``tail``: a giant line generated, never stored."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.left, self.tail = size, tail
        self.block = memoryview(b"a" * (1 << 20))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left:
            n = min(len(buffer), self.left, len(self.block))
            buffer[:n] = self.block[:n]
            self.left -= n
            return n
        n = min(len(buffer), len(self.tail))
        buffer[:n], self.tail = self.tail[:n], self.tail[n:]
        return n


def run(store: Store, bank: str, data: bytes | io.BufferedReader, fmt: str) -> tuple[int, list[tuple[int, str]]]:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    result = import_stream(store, bank, stream, fmt)
    assert result.error_count == len(result.errors)
    return result.added, result.errors


@pytest.fixture(name="bank")
def bank_fixture(store: Store) -> str:
    return bank(store)


def bank(store: Store) -> str:
    """A bank already holding one graded entry, which bad imports must leave exactly as it is."""
    store.create_bank("b")
    store.add_entries("b", [NewEntry("pdq", PDQ, category="1", note="kept")])
    return "b"


def entries(store: Store) -> list[tuple]:
    return [(e.id, e.signal, e.value, e.category, e.note, e.enabled) for e in store.entries("b")]


def test_line_format_reasons(store: Store, bank: str) -> None:
    before = entries(store)
    data = (
        (
            "# header comment\n"
            f"pdq {PDQ.upper()}\r\n"  # already stored: left as it is
            "pdq 12345\n"
            f"pdq {'zz' * 32}\n"
            f"tmk {PDQ}\n"
            "abcdef\n"
            "md5 " + "0" * 32 + "\n"
            "\n"
        ).encode()
        + b"sha1 \xff\xfe\n"
        + b"photodna QUJD\n"
    )
    added, errors = run(store, bank, data, "te")
    assert added == 2
    assert [line for line, _ in errors] == [3, 4, 5, 6, 9]
    reasons = dict(errors)
    assert "64 hex characters, got 5" in reasons[3] and "hexadecimal" in reasons[4]
    assert "unknown signal type 'tmk'" in reasons[5] and "bare 6-character" in reasons[6]
    assert "not UTF-8" in reasons[9]
    assert entries(store)[0] == before[0]


def sparse_file(path: Path, head: bytes, hole: int, tail: bytes) -> Path:
    """``head``, then ``hole`` NUL bytes the file system never stores (seek past the end), then ``tail``."""
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + hole)
        fh.seek(0, io.SEEK_END)
        fh.write(tail)
    return path


def test_a_2gb_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    """Through the file path `bank import` takes; once, on SQLite: the reader, not the backend, is under test
    (and the kernel still hands over 2 GB of zeros, about a second's work)."""
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        bank(store)
        before = entries(store)
        path = sparse_file(tmp_path / "huge.txt", f"pdq {'cd' * 32}\n".encode(), 2 * GIB, b"\nmd5 " + b"1" * 32 + b"\n")
        assert path.stat().st_blocks * 512 < 1 << 20  # really sparse: the test writes almost nothing
        tracemalloc.start()
        try:
            result = import_file(store, "b", path, "te")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (result.added, result.errors) == (2, [(2, f"line is {2 * GIB + 1} bytes, over the 1048576-byte limit")])
        assert peak < 32 << 20  # the reader caps the line; it never holds it
        assert entries(store)[0] == before[0]


def test_a_2gb_line_of_vics_json_stops_at_once(store: Store, bank: str, tmp_path: Path) -> None:
    head = b'{"value": [{"MediaID": 1, "MD5": "' + b"f" * 32 + b'"},\n'
    path = sparse_file(tmp_path / "huge.json", head, 2 * GIB, b'\n{"MediaID": 2, "MD5": "' + b"e" * 32 + b'"}]}')
    result = import_file(store, bank, path, "vics")
    assert (result.added, result.errors) == (1, [(2, "broken JSON: unexpected character '\\x00'")])


def test_csv_reasons(store: Store, bank: str) -> None:
    before = entries(store)
    data = (
        "Signal Type,Hash,Category,Notes\n"
        f"pdq,{PDQ},4,changed\n"
        "md5,xyz,1,\n"
        "sha1," + "2" * 40 + ',3,"note over\ntwo lines"\n'
        "pdq," + "3" * 64 + ",7,\n"
        ",," + "\n"
        "md5," + "4" * 32 + ",,\n"
    ).encode()
    added, errors = run(store, bank, data, "csv")
    assert added == 2 and [line for line, _ in errors] == [3, 6]
    assert "32 hex" in errors[0][1] and "category '7'" in errors[1][1]
    assert entries(store)[0] == before[0]
    note = [e.note for e in store.entries("b") if e.signal == "sha1"]
    assert note == ["note over\ntwo lines"]
    _, errors = run(store, bank, b"size,date\n1,2\n", "csv")
    assert errors == [(1, "header has no 'value' column and no signal columns: size, date")]
    stream = io.BufferedReader(HugeLine(64 << 20, b"\nmd5," + b"5" * 32 + b"\n"), buffer_size=1 << 20)
    data = b"signal,value\n" + stream.read()
    added, errors = run(store, bank, data, "csv")
    assert added == 1 and errors[0][0] == 2 and "over the 1048576-byte limit" in errors[0][1]


VICS_13 = """\ufeff{"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml/$metadata#Cases",
 "value": [{"CaseNumber": "c1", "Media": [
  {"MediaID": 11, "Category": "2", "MD5": "MD5HEX", "PhotoDNA": "QUJD", "IsDistributed": "True"},
  {"MediaID": 12, "Category": 1, "SHA1": "SHA1HEX", "VictimIdentified": "maybe"},
  {"MediaID": 13, "Category": 1, "MD5": "xyz",
   "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "REVG"}, {"HashName": "TMK", "HashValue": "1"}]},
  "not an object",
  {"MediaID": 14, "Category": 3}
 ]}]}
""".replace("MD5HEX", "A" * 32).replace("SHA1HEX", "B" * 40)


HEADERS = {
    "1.3": '"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml/$metadata#Cases"',
    "1.2": '"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.2.xml/$metadata#Cases"',
    "2.0": '"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases"',
}


@pytest.mark.parametrize("version", sorted(HEADERS))
def test_vics_tolerance_and_reasons(store: Store, bank: str, version: str) -> None:
    """Case form, with a BOM, string booleans and PhotoDNA both top-level and in AlternativeHashes."""
    data = VICS_13.replace(HEADERS["1.3"], HEADERS[version])
    assert HEADERS[version] in data
    added, errors = run(store, bank, data.encode(), "vics")
    assert added == 3
    assert [line for line, _ in errors] == [4, 5, 5, 7, 8]
    assert "not a true/false value: 'maybe'" in errors[0][1]
    assert "Media 13 md5" in errors[1][1] and "unknown signal type 'tmk'" in errors[2][1]
    assert errors[3][1] == "Media item is not a JSON object" and "Media 14 has no fingerprint" in errors[4][1]
    got = {(e.signal, e.value): (e.category, e.content_id, e.tags) for e in store.entries("b") if e.value != PDQ}
    assert got == {
        ("md5", "a" * 32): ("2", "11", ("IsDistributed",)),
        ("photodna", "QUJD"): ("2", "11", ("IsDistributed",)),
        ("photodna", "REVG"): ("1", "13", ()),
    }


def test_vics_20_hash_set_with_broken_json_loads_what_came_before(store: Store, bank: str) -> None:
    before = entries(store)
    data = (
        '{"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media",\n'
        '"value": [\n'
        '{"MediaID": 1, "Category": 0, "MD5": "' + "c" * 32 + '", "IsPrecategorized": "false"},\n'
        '{"MediaID": 2, "Category": 4, "AlternativeHashes": [{"HashName": "PDQ", "HashValue": "' + PDQ + '"}]},\n'
        '{"MediaID": 3, "Category": 1, "MD5": "' + "d" * 32 + '" "SHA1": 5},\n'
        '{"MediaID": 4, "Category": 1, "MD5": "' + "e" * 32 + '"}\n'
        "]}"
    ).encode()
    added, errors = run(store, bank, data, "vics")
    assert added == 1 and len(errors) == 1
    assert errors[0][0] == 5 and errors[0][1].startswith("broken JSON")
    assert entries(store)[0] == before[0]  # the PDQ of media 2 was already there, category 1 stays
    for broken, line in ((b"", 1), (b'{"value": [', 1), (b"[1, 2", 1), (b"nonsense", 1)):
        added, errors = run(store, bank, broken, "vics")
        assert added == 0 and len(errors) >= 1 and errors[-1][0] == line, broken


def test_vics_huge_value_is_refused_not_loaded(store: Store, bank: str) -> None:
    stream = io.BufferedReader(HugeLine(64 << 20, b'"}]}'), buffer_size=1 << 20)
    data = b'{"value": [{"MediaID": 1, "MD5": "' + b"f" * 32 + b'"}, {"Comments": "' + stream.read()
    added, errors = run(store, bank, data, "vics")
    assert added == 1 and errors == [(1, "JSON value over 16777216 bytes")]


def test_icse_semicolon_csv(store: Store, bank: str) -> None:
    data = (
        "\ufeffImage ID;MD5;SHA1;PhotoDNA;Category;Series\n"
        f"900;{'A' * 32};{'B' * 40};QUJD;1;beach set\n"
        "901;nothex;;;1;\n"
        f"902;;;REVG;9;\n"
    ).encode()
    added, errors = run(store, bank, data, "icse")
    assert added == 3 and [line for line, _ in errors] == [3, 4]
    content = store.content("b", "900")
    assert {e.signal for e in content} == {"md5", "sha1", "photodna"}
    assert {(e.external_id, e.category, e.tags) for e in content} == {("900", "1", ("beach set",))}
