"""`hashbank bank ...` end to end through the CLI, on both backends."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from tests.conftest import json_lines

PDQ = "ab" * 32


@pytest.fixture
def cli(hashbank_cli: Callable[..., Result]) -> Callable[..., Result]:
    """``hashbank bank ARGS...``."""
    return functools.partial(hashbank_cli, "bank")




def test_bank_commands(cli, shared_data: Path, tmp_path: Path) -> None:
    cli("create", "hotline", "--description", "partner list", "--threshold", "pdq=20")
    cli("create", "uk", "--taxonomy", "uk", "--category", "X=extra")
    assert "already exists" in cli("create", "uk", code=2).stderr
    assert "--threshold" in cli("create", "z", "--threshold", "pdq", code=2).stderr

    images = shared_data / "kodak24" / "images"
    added = json_lines(cli("add", "hotline", str(images / "kodim01.png"), str(images / "kodim02.png"),
                           "--category", "1", "--json"))  # fmt: skip
    assert [(r["added"], r["existing"]) for r in added] == [(4, 0), (4, 0)]
    assert [r["added"] for r in json_lines(cli("add", "hotline", str(images / "kodim01.png"), "--json"))] == [0]
    assert "category 'A'" in cli("add", "hotline", str(images), "--category", "A", code=2).stderr

    bad = cli("add-hash", "hotline", "--signal", "pdq", PDQ, "xyz", "--added-by", "analyst 7", code=1)
    assert "added 1" in bad.stdout and "xyz: pdq must be 64 hex characters" in bad.stderr

    listing = tmp_path / "list.txt"
    listing.write_text(f"pdq {PDQ}\nmd5 nothex\nsha1 {'c' * 40}\n")
    imported = cli("import", "uk", str(listing), "--format", "te", "--category", "b", code=1)
    assert f"{listing}:2: md5 must be 32 hex characters, got 6" in imported.stderr.splitlines()
    assert "added 2, already there 0, refused 1" in imported.stdout
    assert "unknown format" in cli("import", "uk", str(listing), "--format", "xml", code=2).stderr

    shown = json_lines(cli("show", "hotline", "--json"))[0]
    assert (shown["entries"], shown["by_signal"], shown["thresholds"]) == (
        9, {"md5": 2, "pdq": 3, "sha1": 2, "sha256": 2}, {"pdq": 20}
    )
    assert [(b["name"], b["entries"]) for b in json_lines(cli("list", "--json"))] == [("hotline", 9), ("uk", 2)]

    import getpass

    who = {(e["signal"], e["added_by"]) for e in json_lines(cli("changes", "hotline", "--json"))}
    assert ("pdq", "analyst 7") in who and ("md5", f"cli:{getpass.getuser()}") in who

    vics = tmp_path / "case.json"
    cursor = json_lines(cli("show", "hotline", "--json"))[0]["last_seq"]
    cli("export", "hotline", "--format", "vics-case", "-o", str(vics))
    cli("create", "vics")
    assert "added 9" in cli("import", "vics", str(vics), "--format", "vics").stdout
    icse = tmp_path / "icse.csv"
    icse.write_text(f"Image ID;MD5;PhotoDNA;Category\n77;{'E' * 32};QUJD;1\n78;zz;;1\n")
    imported = cli("import", "vics", str(icse), "--format", "icse", "--json", code=1)
    assert json_lines(imported)[0] == {"file": str(icse), "line": 3, "error": "md5 must be 32 hex characters, got 2"}
    assert json_lines(imported)[-1] == {"added": 2, "existing": 0, "refused": 1}
    since = cli("export", "vics", "--format", "te", "--since", str(cursor + 9))  # after the 9 from case.json
    assert since.stdout == f"md5 {'e' * 32}\nphotodna QUJD\n"
    assert "imported but not exported" in cli("export", "vics", "--format", "icse", code=2).stderr
    assert "no bank named 'nope'" in cli("export", "nope", "--format", "te", "-o", str(tmp_path / "x"), code=2).stderr
    assert not (tmp_path / "x").exists()
    unwritable = cli("export", "vics", "--format", "te", "-o", str(tmp_path / "no" / "x"), code=2)
    assert f"{tmp_path / 'no' / 'x'}:Nosuchfileordirectory" in "".join(unwritable.stderr.split())  # rich wraps it

    exported = tmp_path / "out.csv"
    cli("export", "hotline", "--format", "csv", "-o", str(exported))
    cli("create", "copy")
    assert "added 9" in cli("import", "copy", str(exported), "--format", "csv").stdout
    assert cli("export", "copy", "--format", "te").stdout == cli("export", "hotline", "--format", "te").stdout

    feed = json_lines(cli("changes", "uk", "--json"))
    assert [(c["op"], c["category"], c["bank"]) for c in feed] == [("add", "B", "uk")] * 2
    cursor = feed[-1]["seq"]
    cli("disable", "uk")
    cli("rename", "uk", "uk-2023")
    feed = json_lines(cli("changes", "uk-2023", "--since", str(cursor), "--json"))
    assert [(c["op"], c["enabled"], c["bank"]) for c in feed] == [("update", False, "uk")] * 2 + [
        ("update", False, "uk-2023")
    ] * 2
    cli("enable", "uk-2023")
    cli("delete", "uk-2023", "--yes")
    assert [c["op"] for c in json_lines(cli("changes", "copy", "--json"))] == ["add"] * 9
    assert "no bank named 'uk-2023'" in cli("show", "uk-2023", code=2).stderr
    assert "no bank named 'nope'" in cli("export", "nope", "--format", "te", code=2).stderr
