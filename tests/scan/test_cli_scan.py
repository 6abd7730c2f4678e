"""`hashbank scan` as a real process: reports, SIGKILL and resume, the HTML in a real browser."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scan.conftest import HOSTILE_NAME, Tree

CHROMIUM = Path("/usr/bin/chromium")


def scan(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hashbank.cli", "scan", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def without_timing(folder: Path) -> dict[str, str]:
    """The three reports with the only timing field blanked."""
    return {
        "html": re.sub(r'<span id="elapsed">[^<]*', "", (folder / "r.html").read_text()),
        "jsonl": re.sub(r'"elapsed_seconds": [0-9.]+', "", (folder / "r.jsonl").read_text()),
        "csv": re.sub(r"elapsed_seconds,[0-9.]+", "", (folder / "r.csv").read_text()),
    }


def outputs(folder: Path) -> list[str]:
    return ["--report", str(folder / "r.html"), "--json", str(folder / "r.jsonl"), "--csv", str(folder / "r.csv")]


@pytest.fixture(scope="module")
def full_run(tree: Tree, bank_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    env = {**os.environ, "HASHBANK_DATABASE_URL": bank_url, "HASHBANK_HOME": str(folder / "home")}
    done = scan(str(tree.root), *outputs(folder), "--workers", "2", env=env)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stderr and "━" not in done.stderr  # no progress bar when not a terminal
    return folder


def test_reports_carry_the_same_data(tree: Tree, full_run: Path) -> None:
    lines = [json.loads(line) for line in (full_run / "r.jsonl").read_text().splitlines()]
    summary = lines[0]
    matches = [x for x in lines if x["record"] == "match"]
    unreadable = [x for x in lines if x["record"] == "unreadable"]
    assert summary["record"] == "summary" and summary["matched_files"] == len(tree.positives)
    assert {m["path"] for m in matches} == set(tree.positives)
    assert {u["path"] for u in unreadable} == set(tree.bad)
    rows = list(csv.DictReader((full_run / "r.csv").open(newline="")))
    keys = ("path", "bank", "entry_id", "category", "signal", "distance")
    assert [tuple(r[k] for k in keys) for r in rows if r["record"] == "match"] == [
        tuple(str(m[k]) for k in keys) for m in matches
    ]
    assert [(r["path"], r["reason"]) for r in rows if r["record"] == "unreadable"] == [
        (u["path"], u["reason"]) for u in unreadable
    ]
    csv_summary = {r["key"]: r["value"] for r in rows if r["record"] == "summary"}
    assert csv_summary["files_seen"] == str(summary["files_seen"])
    assert csv_summary["matched_by_category/1"] == str(summary["matched_by_category"]["1"])
    page = (full_run / "r.html").read_text()
    assert all(m["sha256"] in page for m in matches)
    assert HOSTILE_NAME not in page and "&lt;img src=x onerror" in page
    assert not list(full_run.glob("*.checkpoint"))  # removed once the reports are written


def test_nothing_but_fingerprints_and_paths_is_written(tree: Tree, full_run: Path) -> None:
    """No byte run of any scanned image ends up in the reports, the store or the scanner's home."""
    media = [p.read_bytes() for p in tree.root.rglob("*") if p.is_file() and p.stat().st_size > 4096]
    samples = [data[len(data) // 2 : len(data) // 2 + 64] for data in media]
    written = [p for p in full_run.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"r.html", "r.jsonl", "r.csv"}
    for path in written:
        content = path.read_bytes()
        assert not any(sample in content for sample in samples), f"{path} holds bytes of a scanned file"
        assert b"\xff\xd8\xff" not in content and b"\x89PNG" not in content, f"{path} holds an image"


def test_sigkill_then_resume_gives_the_identical_report(
    tree: Tree, full_run: Path, scan_env: dict[str, str], tmp_path: Path
) -> None:
    args = [sys.executable, "-m", "hashbank.cli", "scan", str(tree.root), *outputs(tmp_path), "--workers", "1"]
    proc = subprocess.Popen(args, env=scan_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "r.html.checkpoint"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and checkpoint.read_text().count("\n") >= 3:  # header + 2 files done
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the scan finished before it could be killed"
    assert checkpoint.exists() and not (tmp_path / "r.jsonl").exists()
    resumed = scan(str(tree.root), *outputs(tmp_path), "--workers", "1", "--resume", env=scan_env)
    assert resumed.returncode == 0, resumed.stderr
    assert without_timing(tmp_path) == without_timing(full_run)
    assert not checkpoint.exists()


def test_resume_refuses_a_checkpoint_of_another_scan(tree: Tree, scan_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.html.checkpoint").write_text(json.dumps({"hashbank_scan_checkpoint": 1, "paths": ["/x"]}) + "\n")
    done = scan(str(tree.root / "DCIM"), "--report", str(tmp_path / "r.html"), "--resume", env=scan_env)
    assert done.returncode == 2 and "belongs to a different scan" in done.stderr
    assert scan(str(tree.root / "nope"), env=scan_env).returncode == 2
    unknown = scan(str(tree.root), "--bank", "nope", env=scan_env)
    assert unknown.returncode == 2 and "no such bank: nope" in unknown.stderr


def test_fail_on_match_exit_code(tree: Tree, scan_env: dict[str, str]) -> None:
    assert scan(str(tree.root / "DCIM"), "--fail-on-match", env=scan_env).returncode == 1
    assert scan(str(tree.root / "photos"), "--fail-on-match", env=scan_env).returncode == 0


def test_html_report_opens_in_headless_chromium_without_errors(full_run: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (CI installs it: apt-get install chromium)")
    page = full_run / "r.html"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Refused to" in line]
    assert console == []
    assert "Matched files by category" in done.stdout and "<svg" in done.stdout
    assert "&lt;img src=x onerror" in done.stdout  # the hostile file name stayed text
