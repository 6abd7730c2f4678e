"""`hashbank hash` end to end, and the Python API behind it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hashbank
from hashbank.signals import get

HASHBANK = [sys.executable, "-m", "hashbank.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HASHBANK, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def photos(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tree: 6 imagenet JPEGs and 2 kodak PNGs, one level nested."""
    root = tmp_path_factory.mktemp("photos")
    (root / "nested").mkdir()
    for src in sorted((shared_data / "imagenet-sample-1000" / "images").iterdir())[:6]:
        shutil.copy(src, root / src.name)
    for src in sorted((shared_data / "kodak24" / "images").iterdir())[:2]:
        shutil.copy(src, root / "nested" / src.name)
    return root


def test_json_lines_carry_every_field(photos: Path) -> None:
    out = run("hash", str(photos), "--json")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 8
    for rec in records:
        data = Path(rec["path"]).read_bytes()
        assert rec["bytes"] == len(data)
        assert rec["md5"] == hashlib.md5(data).hexdigest()
        assert rec["sha1"] == hashlib.sha1(data).hexdigest()
        assert rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert get("pdq").parse(rec["pdq"]) == rec["pdq"]
        assert 0 <= rec["pdq_quality"] <= 100 and rec["width"] > 0 and rec["height"] > 0
        assert "pdq_dihedral" not in rec


def test_workers_give_the_same_answers_in_the_same_order(photos: Path) -> None:
    one, two = run("hash", str(photos), "--json"), run("hash", str(photos), "--json", "--workers", "2")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout


def test_signal_selection_and_dihedral(photos: Path) -> None:
    out = run("hash", str(photos), "--json", "--signals", "pdq,sha256", "--dihedral")
    rec = json.loads(out.stdout.splitlines()[0])
    assert {"md5", "sha1"}.isdisjoint(rec) and "sha256" in rec
    assert len(rec["pdq_dihedral"]) == 8 and rec["pdq_dihedral"][0] == rec["pdq"]


def test_table_output_and_exit_codes(photos: Path, tmp_path: Path) -> None:
    out = run("hash", str(photos))
    assert out.returncode == 0 and out.stdout.count("pdq=") == 8
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    shutil.copy(next(photos.glob("*.JPEG")), tmp_path / "good.jpg")
    out = run("hash", str(tmp_path))
    assert out.returncode == 1 and "bad.jpg" in out.stdout and "error" in out.stdout
    assert run("hash", str(tmp_path / "missing.jpg")).returncode == 2
    bad_usage = run("hash", str(photos), "--signals", "pdq,nonesuch")
    assert bad_usage.returncode == 2 and "nonesuch" in bad_usage.stderr


def test_python_api_matches_the_cli(photos: Path) -> None:
    path = next(photos.glob("*.JPEG"))
    from_file, from_bytes = hashbank.hash_file(path), hashbank.hash_bytes(path.read_bytes())
    assert isinstance(from_file, hashbank.HashResult)
    assert from_file.signals == from_bytes.signals and from_file.quality == from_bytes.quality
    cli = json.loads(run("hash", str(path), "--json").stdout)
    assert cli == from_file.to_json()
