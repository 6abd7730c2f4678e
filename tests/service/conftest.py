"""Service fixtures: a fresh database per module on SQLite and on PostgreSQL, an app with a key per
role, and real `hashbank serve` processes on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from hashbank.service import ServiceConfig, create_app
from hashbank.store import Store, open_store

#: Small limits so refusals are cheap to provoke; short timings so background work is quick to see.
TEST_CONFIG = ServiceConfig(
    max_upload_bytes=2 * 1024 * 1024,
    max_pixels=4_000_000,
    follow_interval=0.05,
    flush_interval=0.005,
    webhook_poll=0.05,
    webhook_attempts=3,
    webhook_backoff=0.15,  # well above webhook_poll, so the growing gaps show under a loaded CPU
    webhook_timeout=2.0,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store: an SQLite file, or a PostgreSQL database made for this module and dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('svc') / 'hashbank.db'}"
        return
    base = request.getfixturevalue("pg_url")
    name = f"hb_service_{secrets.token_hex(4)}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def secret_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """HASHBANK_HOME and HASHBANK_SECRET_KEY for this module (and for server processes it starts)."""
    env = {"HASHBANK_HOME": str(tmp_path_factory.mktemp("home")), "HASHBANK_SECRET_KEY": secrets.token_hex(16)}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield env


@dataclass
class Api:
    """A running app (in-process) with one key per role."""

    client: TestClient
    store: Store
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="module")
def api(db_url: str, secret_env: dict[str, str]) -> Iterator[Api]:
    store = open_store(db_url)
    app = create_app(store, config=TEST_CONFIG)
    ring = app.state.service.keys
    keys = {role: ring.create(role, name=f"test {role}")[1] for role in ("admin", "curator", "matcher", "auditor")}
    with TestClient(app) as client:
        yield Api(client, store, keys)
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def serve(db_url: str, secret_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start real `hashbank serve` processes on 127.0.0.1 (stopped at the end of the module)."""
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(workers: int = 1) -> Server:
        port = free_port()
        env = {**os.environ, **secret_env, "HASHBANK_DATABASE_URL": db_url, "HASHBANK_FOLLOW_INTERVAL": "0.05"}
        log = logs / f"server-{port}.log"
        with open(log, "wb") as fh:
            process = subprocess.Popen(
                [sys.executable, "-m", "hashbank.cli", "serve", "--port", str(port), "--workers", str(workers),
                 "--access-log"],
                env=env, stdout=fh, stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"server exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in 60 s: {log.read_text()[-2000:]}")

    yield start
    for server in started:
        server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
