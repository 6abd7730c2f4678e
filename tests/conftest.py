"""Shared fixtures: the benign photo corpus beside the repo, and the PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
