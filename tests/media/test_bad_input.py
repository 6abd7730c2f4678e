"""Hostile and unusual files: each gives a hash or a one-line reason; nothing crashes or hangs."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hashbank
from hashbank.media import MediaLimits
from hashbank.signals import get

pdq = get("pdq")
HASHBANK = [sys.executable, "-m", "hashbank.cli"]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png_bomb(path: Path, side: int = 30000) -> None:
    """A real, valid side x side grey PNG of zeros: a few hundred KB that decode to side² bytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    parts = [comp.compress(row * 500) for _ in range(side // 500)]
    parts.append(comp.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> Image.Image:
    return Image.open(shared_data / "kodak24" / "images" / "kodim23.png").convert("RGB")


@pytest.fixture(scope="module")
def photo_pdq(photo: Image.Image) -> str:
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    return hashbank.hash_bytes(buf.getvalue()).pdq


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("zero-byte.jpg", b"", "empty file"),
        ("random.jpg", np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "not a recognised"),
        ("notes.txt", b"these are not the pixels you are looking for\n" * 20, "not a recognised"),
    ],
)
def test_non_images_get_a_reason(name: str, data: bytes, reason: str) -> None:
    result = hashbank.hash_bytes(data, path=name)
    assert result.error is not None and reason in result.error
    assert "\n" not in result.error
    assert result.to_json() == {"path": name, "error": result.error}


def test_truncated_jpeg_is_refused(photo: Image.Image) -> None:
    data = _save(photo, "JPEG", quality=90)
    result = hashbank.hash_bytes(data[: len(data) // 2])
    assert result.error is not None and "truncated" in result.error


def test_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    write_png_bomb(bomb)
    assert bomb.stat().st_size < 2_000_000
    result = hashbank.hash_file(bomb)
    assert result.error is not None and "pixel limit" in result.error and "30000x30000" in result.error


def test_bomb_memory_stays_bounded(tmp_path: Path) -> None:
    """Refusing the bomb decodes nothing: the child process peaks far below its 900 MB of pixels."""
    bomb = tmp_path / "bomb.png"
    write_png_bomb(bomb)
    code = (
        f"import resource, hashbank; r = hashbank.hash_file({str(bomb)!r}); "
        "print(r.error); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    error, peak_kb = out.stdout.splitlines()
    assert "pixel limit" in error
    assert int(peak_kb) < 300_000, f"peak RSS {int(peak_kb) // 1024} MB"


def test_configured_pixel_limit_applies(photo: Image.Image) -> None:
    data = _save(photo, "PNG")
    assert hashbank.hash_bytes(data, limits=MediaLimits(max_pixels=1000)).error is not None
    assert hashbank.hash_bytes(data, limits=MediaLimits(max_bytes=100)).error is not None


@pytest.mark.parametrize("size", [(1, 1), (4, 1000), (1000, 4)])
def test_tiny_images_hash_to_zero_quality(size: tuple[int, int]) -> None:
    """Under 5 px a side the reference gives an all-zero hash of quality 0, which never matches."""
    result = hashbank.hash_bytes(_save(Image.new("RGB", size, (200, 10, 10)), "PNG"))
    assert result.ok and result.pdq == "0" * 64 and result.pdq_quality == 0


def _variants(photo: Image.Image) -> dict[str, bytes]:
    grey16 = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    paletted = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    frame2 = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rgba = photo.convert("RGBA")
    return {
        "cmyk.jpg": _save(photo.convert("CMYK"), "JPEG", quality=92),
        "grey16.png": _save(grey16, "PNG"),
        "animated.gif": _save(photo.convert("P"), "GIF", save_all=True, append_images=[frame2.convert("P")]),
        "palette-transparent.png": _save(paletted, "PNG", transparency=0),
        "rgba.png": _save(rgba, "PNG"),
        "grey.jpg": _save(photo.convert("L"), "JPEG", quality=90),
        "photo.webp": _save(photo, "WEBP", quality=90),
        "photo.tiff": _save(photo, "TIFF"),
        "photo.bmp": _save(photo, "BMP"),
        "photo.jpg": _save(photo, "JPEG", quality=75),
    }


def test_every_pixel_layout_hashes_close_to_the_original(photo: Image.Image, photo_pdq: str) -> None:
    for name, data in _variants(photo).items():
        result = hashbank.hash_bytes(data, path=name)
        assert result.ok, f"{name}: {result.error}"
        assert (result.width, result.height) == photo.size
        assert pdq.distance(result.pdq, photo_pdq) <= 20, name


def test_a_batch_of_bad_files_goes_on(tmp_path: Path, photo: Image.Image) -> None:
    """The CLI hashes the good files, names each bad one with its reason, and exits 1."""
    good = _variants(photo)
    for name, data in good.items():
        (tmp_path / name).write_bytes(data)
    jpeg = good["photo.jpg"]
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "half.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (tmp_path / "readme.txt").write_text("hello\n")
    write_png_bomb(tmp_path / "bomb.png")
    out = subprocess.run(
        [*HASHBANK, "hash", str(tmp_path), "--json", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(records) == {p.name for p in tmp_path.iterdir()}
    for name in good:
        assert "error" not in records[name] and len(records[name]["pdq"]) == 64
    for name in ("empty.jpg", "half.jpg", "readme.txt", "bomb.png"):
        assert records[name]["error"], name
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(b"\xff\xd8")
    path.chmod(0)
    assert "cannot read" in hashbank.hash_file(path).error


def test_dangling_link_and_folder_are_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    assert "cannot read" in hashbank.hash_file(tmp_path / "gone.jpg").error
    assert "cannot read" in hashbank.hash_file(tmp_path).error
