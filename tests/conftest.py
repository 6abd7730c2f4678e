"""Shared fixtures: the benign photo corpus beside the repo, the PostgreSQL server, a fresh store on each backend."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from typer.testing import CliRunner, Result

from hashbank.cli import app
from hashbank.store import Store, open_store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PG_URL = os.environ.get("HASHBANK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a clean skip saying it is missing."""
    if not (SHARED_DATA / "imagenet-sample-1000").is_dir():
        pytest.skip(f"benign photo corpus not found at {SHARED_DATA}")
    return SHARED_DATA


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: cannot use it here
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL database. Skips when unreachable, unless CI
    demands it (HASHBANK_REQUIRE_PG=1), where an unreachable server fails."""
    problem = _pg_reachable()
    if problem:
        if os.environ.get("HASHBANK_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {PG_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {problem}")
    return PG_URL


@pytest.fixture
def hashbank_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated data folder: the default SQLite store and index files go here."""
    home = tmp_path / "hashbank-home"
    monkeypatch.setenv("HASHBANK_HOME", str(home))
    monkeypatch.delenv("HASHBANK_DATABASE_URL", raising=False)
    return home


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL; on PostgreSQL a schema of its own, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = request.getfixturevalue("pg_url")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def hashbank_cli(store_url: str, hashbank_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``hashbank ARGS...`` in-process on a fresh store; asserts the exit code (``code``, default 0)."""
    monkeypatch.setenv("HASHBANK_DATABASE_URL", store_url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    return invoke


def json_lines(result: Result) -> list[dict]:
    """The JSON Lines a command printed."""
    return [json.loads(line) for line in result.stdout.splitlines()]
