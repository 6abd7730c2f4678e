"""Where hashbank keeps its state: one data folder and one database URL, both overridable by env."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """HASHBANK_HOME, else the user's data folder; created on first use so callers can write to it."""
    home = os.environ.get("HASHBANK_HOME")
    path = Path(home).expanduser() if home else Path(platformdirs.user_data_dir("hashbank"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """HASHBANK_DATABASE_URL, else an SQLite file in the data folder (the embedded default)."""
    return os.environ.get("HASHBANK_DATABASE_URL") or f"sqlite:///{data_dir() / 'hashbank.db'}"
