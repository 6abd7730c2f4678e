"""API keys: created once and shown once, stored only as a salted scrypt hash, verified from a memory cache.

A key reads ``hb_<key id>_<secret>``. The key id finds the row; the secret is checked against its
scrypt hash with a constant-time compare. Verified keys are remembered (as a SHA-256 of the key, in
memory only) for ``cache_seconds`` so requests do not pay the KDF each time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from hashbank.service.tables import api_keys

#: What each role may do. Routes name the permission they need (see auth.require).
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {"docs", "hash", "match", "banks.read", "banks.write", "audit.read", "review", "webhooks", "metrics"}
    ),
    "curator": frozenset({"docs", "hash", "match", "banks.read", "banks.write", "review", "webhooks"}),
    "matcher": frozenset({"docs", "hash", "match"}),
    "auditor": frozenset({"docs", "audit.read", "metrics"}),
}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's id (safe to log), role, and banks it is limited to (None: all)."""

    key_id: str
    role: str
    banks: frozenset[str] | None
    rate_limit: float | None = None

    def can(self, permission: str) -> bool:
        return permission in ROLES.get(self.role, ())

    def may_use_bank(self, bank: str) -> bool:
        return self.banks is None or bank in self.banks


def _hash_secret(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def _check_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        computed = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != "hb" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class KeyRing:
    """Create, list, revoke and verify keys in the store's database."""

    def __init__(self, engine: Engine, cache_seconds: float = 10.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[bytes, Principal, float]] = {}
        #: The same verified keys by fingerprint, for ``cached`` (every request's check).
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        #: key id -> (SHA-256 of the key, the stored hash it passed): when the cache entry expires the
        #: row is read again (revocation, role, banks) but the KDF is not paid again for the same key.
        self._passed: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        #: Striped by key id (a fixed number, whatever ids clients make up): one KDF at a time per key id.
        self._gates = [threading.Lock() for _ in range(64)]

    def create(
        self, role: str, banks: list[str] | None = None, name: str = "", rate_limit: float | None = None
    ) -> tuple[str, str]:
        """A new key: returns (key id, full key). The full key exists only in the return value."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        row = {
            "key_id": key_id,
            "secret_hash": _hash_secret(secret, secrets.token_bytes(16)),
            "role": role,
            "banks": sorted(set(banks)) if banks else None,
            "name": name,
            "rate_limit": rate_limit,
            "created_at": _now(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys), row)
        return key_id, f"hb_{key_id}_{secret}"

    def list(self) -> list[dict[str, Any]]:
        """Every key's id, role, banks, name and dates — never a secret or its hash."""
        columns = [c for c in api_keys.c if c.name not in ("id", "secret_hash")]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(api_keys.c.id)).mappings().all()
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (at once in this process, within cache_seconds elsewhere); False if unknown."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            ).rowcount
        with self._lock:
            self._cache.pop(key_id, None)
            self._passed.pop(key_id, None)
            for fingerprint, (principal, _) in list(self._verified.items()):
                if principal.key_id == key_id:
                    del self._verified[fingerprint]
        return bool(done)

    def cached(self, key: str) -> Principal | None:
        """The principal if this exact key was verified recently (no KDF, no database): looked up by
        the key's SHA-256, which only a holder of the key can present."""
        cached = self._verified.get(hashlib.sha256(key.strip().encode()).digest())
        return cached[0] if cached and cached[1] > time.monotonic() else None

    def verify(self, key: str) -> Principal | None:
        """The principal for a valid, unrevoked key; None otherwise. Concurrent calls for one key id
        run one at a time, so a burst of new connections with one key costs one KDF, not one each."""
        parts = split_key(key)
        if parts is None:
            return None
        with self._gates[hash(parts[0]) % len(self._gates)]:
            return self._verify(key, *parts)

    def _verify(self, key: str, key_id: str, secret: str) -> Principal | None:
        fingerprint = hashlib.sha256(key.strip().encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached and cached[2] > now:
            return cached[1] if hmac.compare_digest(cached[0], fingerprint) else None
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        passed = self._passed.get(key_id)
        if not (passed and passed[1] == row.secret_hash and hmac.compare_digest(passed[0], fingerprint)):
            if not _check_secret(secret, row.secret_hash):
                return None
            with self._lock:
                self._passed[key_id] = (fingerprint, row.secret_hash)
        principal = Principal(key_id, row.role, frozenset(row.banks) if row.banks else None, row.rate_limit)
        with self._lock:
            self._cache[key_id] = (fingerprint, principal, now + self.cache_seconds)
            self._verified = {f: v for f, v in self._verified.items() if v[1] > now}  # drop the expired
            self._verified[fingerprint] = (principal, now + self.cache_seconds)
        return principal
