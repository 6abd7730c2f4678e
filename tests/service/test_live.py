"""Two real server processes on one store: an add through either, or the CLI, is matched by the
other within a second; keys never appear in their logs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hashbank.service.keys import KeyRing
from hashbank.signals.compute import hash_file
from hashbank.store import open_store


def match_sha256(server_url: str, key: str, value: str) -> list[dict]:
    response = httpx.post(f"{server_url}/v1/match", headers={"Authorization": f"Bearer {key}"},
                          json={"items": [{"sha256": value}]}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["matches"]


def seconds_until_matched(server_url: str, key: str, value: str, limit: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if match_sha256(server_url, key, value):
            return time.monotonic() - start
        time.sleep(0.02)
    return float("inf")


def test_add_through_one_worker_is_matched_by_the_other(db_url: str, serve, shared_data: Path,
                                                        secret_env: dict[str, str]) -> None:
    with open_store(db_url) as store:
        store.create_bank("live")
        ring = KeyRing(store.engine)
        curator = ring.create("curator", ["live"])[1]
        matcher = ring.create("matcher")[1]
    a, b = serve(), serve()
    photos = sorted((shared_data / "imagenet-sample-1000" / "images").glob("*.JPEG"))[:3]

    # Through worker A (upload), matched through worker B.
    added = httpx.post(f"{a.url}/v1/banks/live/content", headers={"X-API-Key": curator},
                       content=photos[0].read_bytes(), timeout=10).json()
    assert seconds_until_matched(b.url, matcher, added["signals"]["sha256"]) <= 1.0

    # Through B (JSON entries), matched through A.
    value = hash_file(photos[1]).sha256
    body = {"entries": [{"signal": "sha256", "value": value}]}
    assert httpx.post(f"{b.url}/v1/banks/live/entries", headers={"X-API-Key": curator}, json=body).is_success
    assert seconds_until_matched(a.url, matcher, value) <= 1.0

    # Through the store directly (what the CLI does), matched by both.
    value = hash_file(photos[2]).sha256
    script = ("import sys; from hashbank.store import open_store, NewEntry; "
              "open_store(sys.argv[1]).add_entries('live', [NewEntry('sha256', sys.argv[2])])")
    subprocess.run([sys.executable, "-c", script, db_url, value], check=True, timeout=60)
    assert seconds_until_matched(a.url, matcher, value) <= 1.0
    assert seconds_until_matched(b.url, matcher, value) <= 1.0

    # A deletion reaches both as well.
    entry_id = match_sha256(a.url, matcher, value)[0]["entry_id"]
    assert httpx.delete(f"{a.url}/v1/banks/live/entries/{entry_id}", headers={"X-API-Key": curator}).is_success
    for server in (a, b):
        deadline = time.monotonic() + 1.0
        while match_sha256(server.url, matcher, value) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert match_sha256(server.url, matcher, value) == []

    metrics = httpx.get(f"{a.url}/metrics", headers={"X-API-Key": curator})
    assert metrics.status_code == 403
    for server in (a, b):
        log = server.log.read_text()
        assert "POST /v1/match" in log  # the access log is on, and still shows no key
        assert curator not in log and matcher not in log
        assert curator.split("_")[2] not in log


@pytest.mark.parametrize("workers", [2])
def test_serve_with_two_workers_answers(db_url: str, serve, workers: int) -> None:
    with open_store(db_url) as store:
        key = KeyRing(store.engine).create("auditor")[1]
    server = serve(workers=workers)
    for _ in range(20):
        metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": key}, timeout=5)
        assert metrics.status_code == 200 and "hashbank_requests_total" in metrics.text
    assert httpx.get(f"{server.url}/readyz").json()["ready"] is True


def test_the_first_load_freezes_what_the_worker_keeps(db_url: str) -> None:
    """After the index load, the app's long-lived objects are out of the collector's full passes (a
    full pass over them stalls every request for tens of milliseconds)."""
    import gc

    from hashbank.matching import Matcher
    from hashbank.service.live import Follower

    with open_store(db_url) as store:
        gc.unfreeze()
        try:
            Follower(Matcher(store), 1.0).step()
            assert gc.get_freeze_count() > 0
        finally:
            gc.unfreeze()
