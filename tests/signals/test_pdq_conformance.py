"""PDQ against the reference: Meta's published hashes and the pdqhash C++ binding."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hashbank
from hashbank.signals import get
from hashbank.signals.pdq_core import DIHEDRAL_NAMES

pdq = get("pdq")


def _reference_lines(path: Path) -> list[list[str]]:
    return [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]


def test_dihedral_reference_images_within_10_bits_of_cpp(shared_data: Path) -> None:
    ref = shared_data / "pdq-threatexchange-ref"
    lines = _reference_lines(ref / "dih_expected_cpp.txt")
    assert len(lines) == 8
    for expected, name in lines:
        result = hashbank.hash_file(ref / "dih" / Path(name).name)
        assert result.ok, result.error
        assert pdq.distance(result.pdq, expected) <= 10, name
        assert result.pdq_quality == 100


def test_bridge_mods_within_10_bits_of_python_reference(shared_data: Path) -> None:
    ref = shared_data / "pdq-threatexchange-ref"
    lines = _reference_lines(ref / "bridge_mods_expected_python.txt")
    assert len(lines) == 12
    for expected, quality, name in lines:
        result = hashbank.hash_file(ref / name)
        assert result.ok, result.error
        if int(quality) >= 80:
            assert pdq.distance(result.pdq, expected) <= 10, name
        assert abs(result.pdq_quality - int(quality)) <= 5, name


def _corpus(shared_data: Path) -> list[Path]:
    files: list[Path] = []
    for name in ("imagenet-sample-1000", "kodak24"):
        with open(shared_data / name / "manifest.csv", newline="") as fh:
            files += [shared_data / name / row["path"] for row in csv.DictReader(fh)]
    return files


def test_agrees_with_pdqhash_on_the_whole_corpus(shared_data: Path) -> None:
    """Bar: median ≤ 2 bits, 99th percentile ≤ 10 where quality ≥ 50; quality within ±5."""
    pdqhash = pytest.importorskip("pdqhash", reason="pdqhash (the C++ reference binding) is not installed")
    distances, quality_gaps = [], []
    for path in _corpus(shared_data):
        bits, ref_quality = pdqhash.compute(np.asarray(Image.open(path).convert("RGB")))
        # pdqhash's vector is in hex-text order (most significant bit first).
        ref_hex = np.packbits(np.asarray(bits, dtype=bool)).tobytes().hex()
        result = hashbank.hash_file(path, signals=["pdq"])
        assert result.ok, f"{path}: {result.error}"
        quality_gaps.append(abs(result.pdq_quality - ref_quality))
        if ref_quality >= 50:
            distances.append(pdq.distance(result.pdq, ref_hex))
    assert len(distances) > 900
    assert np.median(distances) <= 2
    assert np.percentile(distances, 99) <= 10
    assert max(quality_gaps) <= 5


def test_dihedral_variants_match_rotated_files(shared_data: Path) -> None:
    """The 8 variants of the original are the hashes of its rotated/flipped copies."""
    dih = shared_data / "pdq-threatexchange-ref" / "dih"
    files = sorted(dih.iterdir())
    original = hashbank.hash_file(files[0], dihedral=True)
    variants = dict(zip(DIHEDRAL_NAMES, original.variants["pdq"], strict=True))
    assert variants["original"] == original.pdq
    for name, path in zip(DIHEDRAL_NAMES, files, strict=True):
        direct = hashbank.hash_file(path).pdq
        assert pdq.distance(variants[name], direct) <= 16, (name, path.name)


def test_small_transforms_stay_close_and_other_photos_far(shared_data: Path, tmp_path: Path) -> None:
    photos = sorted((shared_data / "kodak24" / "images").iterdir())[:4]
    hashes = []
    for path in photos:
        img = Image.open(path).convert("RGB")
        img.resize((img.width // 2, img.height // 2)).save(tmp_path / "small.jpg", quality=70)
        original, copy = hashbank.hash_file(path), hashbank.hash_file(tmp_path / "small.jpg")
        assert pdq.distance(original.pdq, copy.pdq) <= 31, path.name
        hashes.append(original.pdq)
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert pdq.distance(a, b) > 31
