"""Archives, bombs, videos and odd files, examined the way a scan worker does."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from hashbank.scan import Record, ScanLimits, examine, run_scan
from hashbank.scan.walk import walk

SIGNALS = ("pdq", "md5", "sha1", "sha256")
SMALL = ScanLimits(max_member_bytes=1_000_000, max_archive_bytes=3_000_000)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _by_path(records: list[Record]) -> dict[str, Record]:
    return {r.path: r for r in records}


def test_zip_members_named_and_hashed_like_plain_files(tmp_path: Path, images: list[Path]) -> None:
    photo = images[0].read_bytes()
    archive = _zip(tmp_path / "a.zip", {"dir/photo.jpg": photo, "dir/readme": b"hello"})
    got = _by_path(examine(str(archive), SIGNALS, ScanLimits()))
    assert got[str(archive)].kind == "archive" and got[str(archive)].error is None
    member = got[f"{archive}!/dir/photo.jpg"]
    plain = examine(str(images[0]), SIGNALS, ScanLimits())[0]
    assert member.kind == "image" and member.signals == plain.signals and member.size == len(photo)
    assert "not an image" in (got[f"{archive}!/dir/readme"].error or "")


def test_zip_bomb_member_refused_by_declared_size(tmp_path: Path, images: list[Path]) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(20_000_000), "ok.jpg": images[1].read_bytes()})
    assert archive.stat().st_size < 100_000
    got = _by_path(examine(str(archive), SIGNALS, SMALL))
    reason = got[f"{archive}!/zeros.bin"].error or ""
    assert "20000000 bytes" in reason and "zip bomb guard" in reason
    assert got[f"{archive}!/ok.jpg"].signals["pdq"]


def test_archive_total_expansion_limit_stops_reading(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "wide.zip", {f"part{i}.bin": bytes(900_000) for i in range(6)})
    got = examine(str(archive), SIGNALS, SMALL)
    assert "expands to more than 3000000 bytes" in (got[0].error or "")
    assert len(got) == 1 + 3  # the archive, then the members read before the budget ran out


def test_nesting_deeper_than_the_limit_is_reported(tmp_path: Path, images: list[Path]) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("photo.jpg", images[2].read_bytes())
    middle = io.BytesIO()
    with zipfile.ZipFile(middle, "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
    outer = _zip(tmp_path / "outer.zip", {"middle.zip": middle.getvalue()})
    deep = _by_path(examine(str(outer), SIGNALS, ScanLimits()))
    assert deep[f"{outer}!/middle.zip!/inner.zip!/photo.jpg"].signals["pdq"]
    shallow = _by_path(examine(str(outer), SIGNALS, ScanLimits(max_depth=2)))
    assert "nested more than 2 deep" in (shallow[f"{outer}!/middle.zip!/inner.zip"].error or "")


def test_tar_gz_bomb_member_skipped_and_rest_read(tmp_path: Path, images: list[Path]) -> None:
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("big.bin", bytes(2_000_000)), ("x/photo.JPEG", images[3].read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    got = _by_path(examine(str(path), SIGNALS, SMALL))
    assert "over the 1000000-byte limit" in (got[f"{path}!/big.bin"].error or "")
    assert got[f"{path}!/x/photo.JPEG"].kind == "image" and got[f"{path}!/x/photo.JPEG"].signals["pdq"]


def test_corrupt_archives_give_reasons(tmp_path: Path, images: list[Path]) -> None:
    whole = _zip(tmp_path / "whole.zip", {"photo.jpg": images[4].read_bytes()}).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "cut.tgz").write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
    got = _by_path(examine(str(tmp_path / "cut.zip"), SIGNALS, ScanLimits()))
    assert "corrupt zip archive" in (got[str(tmp_path / "cut.zip")].error or "")
    got = _by_path(examine(str(tmp_path / "cut.tgz"), SIGNALS, ScanLimits()))
    assert "corrupt or truncated" in (got[str(tmp_path / "cut.tgz")].error or "")


def test_video_by_magic_counted_with_byte_digests_only(tmp_path: Path) -> None:
    body = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(3_000_000)
    (tmp_path / "clip.bin").write_bytes(body)
    record = examine(str(tmp_path / "clip.bin"), SIGNALS, ScanLimits())[0]
    assert record.kind == "video" and record.error is None
    assert record.signals == {
        "md5": hashlib.md5(body).hexdigest(),
        "sha1": hashlib.sha1(body).hexdigest(),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def test_walk_skips_fifo_and_symlink_loops(tmp_path: Path, images: list[Path]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.jpg").write_bytes(images[5].read_bytes())
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "gone").symlink_to("nowhere")
    os.mkfifo(tmp_path / "pipe")
    items = list(walk([str(tmp_path)]))
    files = [i for i in items if not isinstance(i, Record)]
    problems = {r.path: r.error for r in items if isinstance(r, Record)}
    assert files == [(str(tmp_path / "a" / "p.jpg"), len(images[5].read_bytes()))]
    assert "symbolic link loop" in problems[str(tmp_path / "a" / "up")]
    assert "symbolic link loop" in problems[str(tmp_path / "self")]
    assert "broken symbolic link" in problems[str(tmp_path / "gone")]
    assert "FIFO" in problems[str(tmp_path / "pipe")]


@pytest.mark.parametrize("url", [False, True])
def test_fsspec_url_scans_like_a_path(tmp_path: Path, images: list[Path], url: bool) -> None:
    for src in images[:3]:
        (tmp_path / src.name).write_bytes(src.read_bytes())
    plain = run_scan([str(tmp_path)], signals=["pdq", "sha256"])
    target = f"file://{tmp_path}" if url else str(tmp_path)
    other = run_scan([target], signals=["pdq", "sha256"])
    assert [r.signals for r in other.records] == [r.signals for r in plain.records]
    assert len(plain.records) == 3 and all(r.signals["pdq"] for r in plain.records)


def test_non_utf8_file_names_reach_every_report(tmp_path: Path) -> None:
    from hashbank.scan import build_report, write_csv, write_html, write_jsonl

    name = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_text("not media")
    report = build_report(run_scan([str(tmp_path / "in")]).records, 0.0)
    assert report.unreadable[0]["path"].endswith(name)
    write_html(report, tmp_path / "r.html")
    write_csv(report, tmp_path / "r.csv")
    write_jsonl(report, tmp_path / "r.jsonl")
    for out in ("r.html", "r.csv"):
        assert "caf\\udce9.txt" in (tmp_path / out).read_text(encoding="utf-8")
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1])["path"].endswith(name)
