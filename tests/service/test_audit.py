"""Every match and every write leaves an audit row before it is answered (even if the server is then
killed), and no worker answers "no match" from an index that is not loaded yet."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hashbank.service import create_app
from hashbank.service.keys import KeyRing
from hashbank.service.records import AuditUnavailable, Recorder
from hashbank.service.tables import audit_log
from hashbank.store import NewEntry, open_store
from tests.service.conftest import TEST_CONFIG

T = TypeVar("T")


def audit_rows(url: str, key_id: str) -> dict[str, int]:
    with open_store(url) as store, store.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, func.count()).where(audit_log.c.actor == key_id).group_by(audit_log.c.action)
        )
        return {action: count for action, count in rows}


def test_answered_requests_are_audited_even_if_the_server_is_killed(db_url: str, serve) -> None:
    with open_store(db_url) as store:
        store.create_bank("audited")
        store.add_entries("audited", [NewEntry("md5", "a" * 32)])
        curator_id, curator = KeyRing(store.engine).create("curator", ["audited"])
    server = serve()
    headers = {"Authorization": f"Bearer {curator}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for i in range(30):
            response = client.post("/v1/match", json={"items": [{"md5": "a" * 32}, {"md5": f"{i:032x}"}]})
            assert response.status_code == 200, response.text
        assert response.json()["results"][0]["matches"]
        entries = {"entries": [{"signal": "md5", "value": f"{i:032x}"} for i in range(3)]}
        assert client.post("/v1/banks/audited/entries", json=entries).is_success
        assert client.patch("/v1/banks/audited", json={"description": "audited bank"}).is_success
    # No graceful shutdown: whatever was answered must already be in the database.
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    assert audit_rows(db_url, curator_id) == {"match": 30, "entries.add": 1, "bank.update": 1}


def test_no_match_answers_before_the_index_is_loaded(db_url: str, secret_env: dict[str, str]) -> None:
    store = open_store(db_url)
    try:
        app = create_app(store, config=TEST_CONFIG)
        key = app.state.service.keys.create("matcher")[1]
        body = {"items": [{"md5": "b" * 32}]}
        headers = {"Authorization": f"Bearer {key}"}
        cold = TestClient(app)  # no lifespan: the follower has not loaded the index
        assert cold.get("/readyz").status_code == 503
        refused = cold.post("/v1/match", headers=headers, json=body)
        assert refused.status_code == 503 and "loading" in refused.json()["detail"]
        assert cold.post("/v1/match/file", headers=headers, content=b"x").status_code == 503
        with TestClient(app) as warm:
            deadline = time.monotonic() + 10
            while warm.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert warm.post("/v1/match", headers=headers, json=body).status_code == 200
    finally:
        store.close()


@pytest.fixture(params=["loop", "thread"])
def writes_on(request: pytest.FixtureRequest) -> str:
    """Where the Recorder writes: started on the event loop (as the app's lifespan starts it: with
    SQLite it then writes on that loop) or outside one (a writer thread, as with PostgreSQL)."""
    return request.param


def run_with(recorder: Recorder, writes_on: str, body: Callable[[], Awaitable[T]]) -> T:
    """``body()`` on a fresh event loop, the recorder started and stopped the way ``writes_on`` says."""

    async def main() -> T:
        if writes_on == "loop":
            recorder.start()
        try:
            return await body()
        finally:
            if writes_on == "loop":
                await asyncio.to_thread(recorder.stop)  # as the lifespan does

    if writes_on == "thread":
        recorder.start()
    try:
        return asyncio.run(main())
    finally:
        if writes_on == "thread":
            recorder.stop()


def test_async_audits_share_a_commit_and_one_giving_up_fails_no_other(db_url: str, writes_on: str) -> None:
    """Requests of one event loop wait on one future per batch (shielded): cancelling one request, as a
    disconnect or timeout does, leaves the others' answers and every queued row in place."""
    with open_store(db_url) as store:
        recorder = Recorder(store.engine, linger=0.05)

        async def body() -> list[object]:
            waiters = [asyncio.create_task(recorder.audit_async(f"shared-{writes_on}", "match", detail={"i": i}))
                       for i in range(20)]
            await asyncio.sleep(0)  # every row queued, all in one batch
            waiters[0].cancel()
            return await asyncio.gather(*waiters, return_exceptions=True)

        results = run_with(recorder, writes_on, body)
    assert isinstance(results[0], asyncio.CancelledError) and results[1:] == [None] * 19
    assert audit_rows(db_url, f"shared-{writes_on}") == {"match": 20}


def test_a_failed_audit_write_fails_its_requests_and_keeps_the_rows(db_url: str, writes_on: str) -> None:
    with open_store(db_url) as store:
        recorder = Recorder(store.engine, linger=0.01, timeout=10)

        async def body() -> list[object]:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_away")
            try:
                failing = [recorder.audit_async(f"failing-{writes_on}", "match") for _ in range(5)]
                results = await asyncio.gather(*failing, return_exceptions=True)
            finally:
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("ALTER TABLE audit_log_away RENAME TO audit_log")
            await recorder.audit_async(f"failing-{writes_on}", "match")  # the next batch carries the kept rows
            return results

        results = run_with(recorder, writes_on, body)
    assert all(isinstance(r, AuditUnavailable) for r in results), results
    assert audit_rows(db_url, f"failing-{writes_on}") == {"match": 6}


def test_a_lone_request_is_not_kept_waiting_for_company(db_url: str, writes_on: str) -> None:
    """The writer thread lingers for more rows only when requests come together; one at a time, each is
    written at once (and on the loop nothing lingers)."""
    with open_store(db_url) as store:
        recorder = Recorder(store.engine, linger=1.0)

        async def body() -> float:
            await recorder.audit_async(f"lone-{writes_on}", "match")  # the first batch may linger
            started = time.monotonic()
            await recorder.audit_async(f"lone-{writes_on}", "match")
            return time.monotonic() - started

        assert run_with(recorder, writes_on, body) < 0.5
    assert audit_rows(db_url, f"lone-{writes_on}") == {"match": 2}


def test_the_loop_keeps_serving_while_another_process_holds_the_write_lock(db_url: str) -> None:
    """SQLite, rows written on the loop: while another connection holds the write lock (a bulk import,
    say), the loop does not wait in SQLite's busy handler; the rows are committed once the lock is
    free, and only then are their requests answered."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL rows are written on a thread, and its writers queue in the server")
    with open_store(db_url) as store:
        recorder = Recorder(store.engine)
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        released: list[float] = []

        def release() -> None:
            time.sleep(0.5)
            released.append(time.monotonic())
            holder.execute("COMMIT")

        async def body() -> tuple[float, float]:
            ticks: list[float] = []

            async def tick() -> None:
                while not released:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.005)

            ticker = asyncio.create_task(tick())
            threading.Thread(target=release, daemon=True).start()
            await asyncio.sleep(0.02)  # the ticker is going
            await asyncio.gather(*(recorder.audit_async("locked", "match") for _ in range(10)))
            answered = time.monotonic()
            await ticker
            stalls = [b - a for a, b in itertools.pairwise([*ticks, answered])]
            return answered, max(stalls)

        answered, longest_stall = run_with(recorder, "loop", body)
        holder.close()
    assert answered >= released[0], "answered before the audit rows could be committed"
    assert longest_stall < 0.1, f"the event loop stood still {longest_stall * 1000:.0f} ms waiting for the lock"
    assert audit_rows(db_url, "locked") == {"match": 10}
