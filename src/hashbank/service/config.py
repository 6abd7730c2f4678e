"""The service's limits and timings, from the environment so every worker process agrees."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Refusal limits and background timings; each field can be set by ``HASHBANK_<FIELD>``."""

    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_batch: int = 1000
    #: Requests per second each key may make to one worker (a token bucket of ``rate_burst``).
    rate_limit: float = 2000.0
    rate_burst: int = 4000
    request_timeout: float = 30.0
    #: Threads per worker hashing uploads (0: one per CPU).
    hash_threads: int = 0
    #: How often each worker replays the store's change log into its index.
    follow_interval: float = 0.2
    #: How long a verified key stays verified in memory (revocation reaches other workers within this).
    key_cache_seconds: float = 10.0
    #: PostgreSQL: how long the audit writer thread waits for more rows to join a batch when requests come
    #: together (each waits for its row; a lone request is written at once). Longer: fewer commits, each
    #: request later. (SQLite's batches are written on the event loop, one per pass of the loop.)
    flush_interval: float = 0.005
    webhook_poll: float = 0.5
    webhook_timeout: float = 5.0
    webhook_attempts: int = 5
    webhook_backoff: float = 2.0
    #: 1: FastAPI's native OpenTelemetry tracing and metrics through the global providers. Off by default:
    #: /metrics is the service's own, and looking for configured providers costs every request.
    otel: int = 0

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceConfig:
        """Defaults, then HASHBANK_* variables, then explicit overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"HASHBANK_{f.name.upper()}")
            if raw:
                kind = int if f.type in ("int", int) else float
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"HASHBANK_{f.name.upper()}={raw!r} is not a number") from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
