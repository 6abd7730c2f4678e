"""`hashbank match` end to end on transformed copies of benign photos, and the Matcher staying live."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import Result

from hashbank.matching import RELEASE_EVERY, Matcher
from hashbank.signals.compute import hash_file
from hashbank.store import NewEntry, open_store
from tests.conftest import json_lines

KNOWN = 4  # photos put in the bank; the next ones stay unknown


@pytest.fixture
def photos(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "imagenet-sample-1000" / "images").glob("*.JPEG"))[:8]


@pytest.fixture
def cli(hashbank_cli: Callable[..., Result]) -> Callable[..., Result]:
    return hashbank_cli


def transformed(photo: Path, folder: Path) -> dict[str, Path]:
    """The copies a platform would see: recompressed, resized, slightly cropped, rotated."""
    img = Image.open(photo).convert("RGB")
    w, h = img.size
    out = {
        "recompressed": img,
        "resized": img.resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.LANCZOS),
        "cropped": img.crop((w // 100, h // 100, w - w // 100, h - h // 100)),  # 1% a side
        "rotated": img.rotate(90, expand=True),
    }
    paths = {}
    for name, copy in out.items():
        buf = io.BytesIO()
        copy.save(buf, "JPEG", quality=50)
        paths[name] = folder / f"{photo.stem}-{name}.jpg"
        paths[name].write_bytes(buf.getvalue())
    return paths


def test_match_cli_finds_transformed_copies_and_nothing_else(cli, photos: list[Path], tmp_path: Path) -> None:
    cli("bank", "create", "hotline")
    cli("bank", "add", "hotline", *map(str, photos[:KNOWN]), "--category", "1")
    copies = tmp_path / "uploads"
    copies.mkdir()
    variants = [transformed(p, copies) for p in photos]
    entry_of = {}
    with open_store() as store:
        for photo in photos[:KNOWN]:
            (entry,) = store.find("pdq", hash_file(photo).pdq or "", bank="hotline")
            entry_of[photo.stem] = entry.id

    found = {row["path"]: row for row in json_lines(cli("match", str(copies), "--json"))}
    for photo, paths in zip(photos, variants, strict=True):
        for name, path in paths.items():
            matches = found[str(path)]["matches"]
            if photo in photos[:KNOWN] and name != "rotated":
                assert matches, f"{name} copy of a banked photo not found"
                best = matches[0]
                assert (best["bank"], best["entry_id"], best["category"], best["signal"]) == (
                    "hotline",
                    entry_of[photo.stem],
                    "1",
                    "pdq",
                )
                assert 0 <= best["distance"] <= 31
            else:
                assert not matches, f"{path.name} matched {matches}"

    # the rotated copy is found only with --dihedral, through a rotated form of the query
    rotated = variants[0]["rotated"]
    (plain,) = json_lines(cli("match", str(rotated), "--json"))
    assert plain["matches"] == []
    (turned,) = json_lines(cli("match", str(rotated), "--json", "--dihedral"))
    assert turned["matches"][0]["entry_id"] == entry_of[photos[0].stem]
    assert turned["matches"][0]["query_signal"].startswith("pdq:")

    # exit codes, a bank filter, a threshold, --hash
    cli("match", str(variants[0]["resized"]), "--fail-on-match", code=1)
    cli("match", str(variants[KNOWN]["resized"]), "--fail-on-match")
    cli("bank", "create", "other")
    (none,) = json_lines(cli("match", str(variants[0]["resized"]), "--bank", "other", "--json"))
    assert none["matches"] == []
    (strict,) = json_lines(cli("match", str(variants[0]["resized"]), "--threshold", "0", "--json"))
    assert all(m["distance"] == 0 for m in strict["matches"])
    value = hash_file(photos[1]).pdq
    (by_hash,) = json_lines(cli("match", "--hash", f"pdq:{value}", "--json"))
    assert by_hash["matches"][0]["entry_id"] == entry_of[photos[1].stem] and by_hash["matches"][0]["distance"] == 0


def test_match_cli_bad_input_is_a_clear_error(cli, tmp_path: Path) -> None:
    cli("bank", "create", "hotline")
    bad = cli("match", "--hash", "pdq:zz", "--hash", "nonsense:00", "--json", code=1)
    rows = json_lines(bad)
    assert "hex" in rows[0]["error"] and "unknown signal type" in rows[1]["error"]
    assert "Traceback" not in bad.stdout + bad.stderr
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (row,) = json_lines(cli("match", str(tmp_path / "broken.jpg"), "--json", code=1))
    assert row["error"]
    assert "no such bank: nope" in cli("match", "--hash", "md5:" + "0" * 32, "--bank", "nope", code=2).stderr
    assert "SIGNAL:VALUE" in cli("match", "--hash", "pdq", code=2).stderr


def test_matcher_follows_changes_made_elsewhere(store_url: str, photos: list[Path]) -> None:
    """A second Store (another process, the CLI) adds, disables and deletes; catch_up brings each in."""
    results = [hash_file(p) for p in photos[:3]]
    with open_store(store_url) as mine, open_store(store_url) as theirs:
        theirs.create_bank("live", thresholds={"pdq": 10})
        matcher = Matcher(mine)
        assert matcher.catch_up() == 0
        assert matcher.match(results[0]) == []

        theirs.add_entries("live", [NewEntry("pdq", r.pdq or "", category="2") for r in results])
        theirs.add_entries("live", [NewEntry("md5", results[2].md5 or "")])
        assert matcher.match(results[0]) == []  # not caught up yet
        assert matcher.catch_up() == 4
        (hit,) = matcher.match(results[0])
        assert (hit.bank, hit.category, hit.distance) == ("live", "2", 0)
        assert {m.signal for m in matcher.match(results[2])} == {"pdq", "md5"}

        theirs.update_entries("live", [hit.entry_id], enabled=False)
        matcher.catch_up()
        assert matcher.match(results[0]) == []
        theirs.update_entries("live", [hit.entry_id], enabled=True)
        matcher.catch_up()
        assert [m.entry_id for m in matcher.match(results[0])] == [hit.entry_id]

        # a timed disable comes back once it has passed, though nothing else changes meanwhile
        theirs.update_entries("live", [hit.entry_id], disabled_until=datetime.now() + timedelta(seconds=0.3))
        matcher.catch_up()
        assert matcher.match(results[0]) == []
        time.sleep(0.3 + RELEASE_EVERY)
        matcher.catch_up()
        assert [m.entry_id for m in matcher.match(results[0])] == [hit.entry_id]

        second = matcher.match(results[1])[0]
        theirs.delete_entries("live", [second.entry_id])
        matcher.catch_up()
        assert matcher.match(results[1]) == []

        # a new matcher started now loads the same state from the entries, not the whole log
        fresh = Matcher(mine)
        fresh.catch_up()
        assert [m.entry_id for m in fresh.match(results[0])] == [hit.entry_id]
        assert fresh.match(results[1]) == [] and len(fresh) == len(matcher) == 3

        # the bank's threshold applies; an explicit one overrides it; a disabled bank matches nothing
        blurred = hash_file(photos[0])
        far = blurred.pdq and format(int(blurred.pdq, 16) ^ ((1 << 20) - 1), "064x")
        assert matcher.match_values({"pdq": far}) == []
        assert matcher.match_values({"pdq": far}, threshold=25)[0].distance == 20
        theirs.set_bank_enabled("live", False)
        matcher.catch_up()
        assert matcher.match(results[0]) == []


def test_matcher_compacts_off_to_the_side(store_url: str) -> None:
    """Past the delta limit the Matcher swaps in a freshly built index; every entry still matches."""
    values = [format(random.Random(i).getrandbits(256), "064x") for i in range(60)]
    with open_store(store_url) as mine, open_store(store_url) as theirs:
        theirs.create_bank("busy")
        matcher = Matcher(mine, page=7, delta_limit=10)
        matcher.catch_up()
        before = matcher._hamming["pdq"]
        for start in range(0, 60, 15):
            theirs.add_entries("busy", [NewEntry("pdq", v) for v in values[start : start + 15]])
        matcher.catch_up()
        index = matcher._hamming["pdq"]
        assert index is not before and index.pending <= 10 and len(index) == 60
        for value in values:
            assert [m.distance for m in matcher.match_values({"pdq": value})] == [0]
