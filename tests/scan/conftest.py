"""A small seized-drive-like tree built from benign photos, and a bank that knows some of it."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from hashbank.signals.compute import hash_file

HOSTILE_NAME = "<img src=x onerror=console.error('unescaped')>.txt"


@dataclass
class Tree:
    root: Path
    #: path (as the scan names it) -> part of the reason it must be reported with
    bad: dict[str, str] = field(default_factory=dict)
    #: path -> (signal, category) it must match by
    positives: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: (signal, value, category) the bank holds
    entries: list[tuple[str, str, str]] = field(default_factory=list)
    files: int = 0


def _unreadable(path: Path) -> str | None:
    """A file this process cannot read, even as root; None when there is no way here."""
    path.write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    path.chmod(0)
    try:
        path.open("rb").close()
    except PermissionError:
        return "Permission denied"
    # root reads any mode-0 file; /proc/sys write-only files refuse reads even to root.
    path.unlink()
    target = Path("/proc/sys/vm/compact_memory")
    try:
        target.open("rb").close()
    except PermissionError:
        path.symlink_to(target)
        return "Permission denied"
    except OSError:
        pass
    return None


def build_tree(root: Path, images: list[Path]) -> Tree:
    """45 good photos (5 of them edited copies of banked ones), a zip with a nested tar.gz, 5 bad files."""
    tree = Tree(root)
    photos, edits = root / "photos", root / "DCIM" / "edits"
    photos.mkdir(parents=True)
    edits.mkdir(parents=True)
    for i, src in enumerate(images[:40]):
        # Extensions lie on seized drives: identification is by content.
        (photos / (src.stem + (".dat" if i % 7 == 0 else ".jpg"))).write_bytes(src.read_bytes())
    for i, src in enumerate(images[40:45]):
        category = "1" if i < 3 else "2"
        tree.entries.append(("pdq", hash_file(src).pdq or "", category))
        with Image.open(src) as img:
            edited = img.convert("RGB").resize((img.width * 3 // 5, img.height * 3 // 5))
            target = edits / f"edit{i}.jpg"
            edited.save(target, quality=70)
        tree.positives[str(target)] = ("pdq", category)
    known = images[45]
    tree.entries.append(("sha256", hash_file(known).sha256 or "", "1"))
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        tf.add(known, arcname="deep/known.jpg")
        tf.add(images[46], arcname="deep/other.jpg")
    archive = root / "backup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(images[47], "holiday/a.jpg")
        zf.writestr("holiday/inner.tar.gz", inner.getvalue())
    tree.positives[f"{archive}!/holiday/inner.tar.gz!/deep/known.jpg"] = ("sha256", "1")

    bad = root / "bad"
    bad.mkdir()
    data = images[48].read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 2])
    tree.bad[str(bad / "truncated.jpg")] = "truncated image data"
    (bad / "empty.jpg").write_bytes(b"")
    tree.bad[str(bad / "empty.jpg")] = "empty file"
    (bad / HOSTILE_NAME).write_text("meeting notes\n")
    tree.bad[str(bad / HOSTILE_NAME)] = "not an image or video"
    # 400 megapixels in a 50 kB PNG: refused from its header, never decoded.
    Image.new("1", (20_000, 20_000)).save(bad / "bomb.png")
    tree.bad[str(bad / "bomb.png")] = "over the 250000000-pixel limit"
    reason = _unreadable(bad / "locked.jpg")
    if reason:
        tree.bad[str(bad / "locked.jpg")] = reason
    tree.files = 40 + 5 + 4 + (1 if reason else 0) + 1 + 2 + 2  # + the zip, its 2 members, the tar.gz's 2
    return tree


@pytest.fixture(scope="session")
def images(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "imagenet-sample-1000" / "images").glob("*.JPEG"))[:60]


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Tree:
    return build_tree(tmp_path_factory.mktemp("seized"), images)


@pytest.fixture(scope="session")
def bank_url(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> str:
    """An SQLite store with bank 'hotline' holding the tree's known fingerprints, and an unrelated bank."""
    from hashbank.store import NewEntry, open_store

    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'hashbank.db'}"
    with open_store(url) as store:
        store.create_bank("hotline")
        store.add_entries("hotline", [NewEntry(s, v, category=c) for s, v, c in tree.entries])
        store.create_bank("other")
        store.add_entries("other", [NewEntry("md5", "0" * 32, category="1")])
    return url


@pytest.fixture
def scan_env(bank_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a `hashbank scan` subprocess using the test store."""
    return {**os.environ, "HASHBANK_DATABASE_URL": bank_url, "HASHBANK_HOME": str(tmp_path / "home")}
