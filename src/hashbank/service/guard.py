"""The ASGI layer every request passes first: key check, rate limit, body cap, timeout, metrics.

Authentication happens here, before routing and before any body is read, so every path but the
health checks needs a valid key (even ones that do not exist), and an anonymous client cannot make
the server parse an upload. Authorisation (role, bank) is per route: see ``auth.require``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from anyio import to_thread
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashbank.service.keys import KeyRing, Principal
from hashbank.service.metrics import Metrics

PUBLIC = frozenset({"/healthz", "/readyz"})
CHALLENGE = [(b"www-authenticate", b'Bearer realm="hashbank", Basic realm="hashbank"')]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the {limit}-byte limit")


class RateLimiter:
    """A token bucket per key, in this worker."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_needed(self, key_id: str, rate: float | None = None) -> float:
        """0 if the request may go now, else seconds until it could."""
        rate = rate or self.rate
        burst = max(self.burst if rate == self.rate else rate * 2, 1.0)
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / rate
        self._buckets[key_id] = (tokens - 1, now)
        return 0.0


def key_and_length(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None]:
    """The key from ``Authorization: Bearer``, ``Authorization: Basic`` (as password) or ``X-API-Key``,
    and the Content-Length's value if there is a well-formed one: one pass over the headers, as every
    request asks for both."""
    key: str | None = None
    length: int | None = None
    seen_key = False
    for name, value in headers:
        if name == b"content-length":
            if length is None and value.isdigit():
                length = int(value)
        elif seen_key:
            continue
        elif name == b"authorization":
            seen_key = True
            kind, _, rest = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer":
                key = rest.strip()
            elif kind.lower() == "basic":
                try:
                    key = base64.b64decode(rest.strip()).decode().partition(":")[2]
                except ValueError:
                    key = None
            else:
                seen_key = False
        elif name == b"x-api-key":
            seen_key = True
            key = value.decode("latin-1").strip()
    return key, length


class Admission:
    """Who may come in, in one place for both ways in: the Guard (every ASGI request) and the lanes
    (``lane.py``, the hot path that skips ASGI). Keys, rate limits, the body cap, request metrics."""

    def __init__(self, keys: KeyRing, limiter: RateLimiter, metrics: Metrics, max_body: int) -> None:
        self.keys, self.limiter, self.metrics, self.max_body = keys, limiter, metrics, max_body

    def known(self, key: str | None) -> Principal | None:
        """The caller if its key was verified recently; None if there is no key or it needs checking."""
        return self.keys.cached(key) if key else None

    def limits(self, principal: Principal, length: int | None) -> tuple[Any, ...] | None:
        """None if an admitted caller's request (of ``length`` bytes, if declared) may go on, else
        (status, reason[, headers]): rate, size."""
        wait = self.limiter.wait_needed(principal.key_id, principal.rate_limit)
        if wait:
            self.metrics.count("rate_limited")
            return 429, f"rate limit for this key exceeded; retry in {wait:.2f} s", [
                (b"retry-after", str(max(1, round(wait))).encode())
            ]
        if length is not None and length > self.max_body:
            return 413, f"request body is {length} bytes, over the {self.max_body}-byte limit"
        return None


def refusal_body(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON response (``body`` already encoded), straight to the ASGI server."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_json(send, status, refusal_body(detail), headers)


class Guard:
    """Pure ASGI middleware (no per-request task or copy of the body)."""

    def __init__(self, app: ASGIApp, admission: Admission, timeout: float) -> None:
        self.app, self.admission, self.timeout = app, admission, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 500, "started": False}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
            await send(message)

        try:
            refusal = await self._admit(scope)
            if refusal:
                await reply(sending, *refusal)
                return
            try:
                # asyncio.timeout, not wait_for: no extra task per request.
                async with asyncio.timeout(self.timeout):
                    await self.app(scope, self._capped(receive), sending)
            except TimeoutError:
                if not state["started"]:
                    await reply(sending, 503, f"request took longer than the {self.timeout:g} s limit")
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if scope["path"] not in PUBLIC else scope["path"])
            self.admission.metrics.observe(template, scope["method"], state["status"], time.perf_counter() - start)

    async def _admit(self, scope: Scope) -> tuple[Any, ...] | None:
        """None to let the request in, else (status, reason[, headers]) to refuse it."""
        if scope["path"] in PUBLIC:
            return None
        key, length = key_and_length(scope["headers"])
        principal = self.admission.known(key)
        if principal is None:
            if not key:
                return 401, "an API key is required (Authorization: Bearer <key>)", CHALLENGE
            principal = await to_thread.run_sync(self.admission.keys.verify, key)
            if principal is None:
                return 401, "the API key is not valid or was revoked", CHALLENGE
        scope.setdefault("state", {})["principal"] = principal
        return self.admission.limits(principal, length)

    def _capped(self, receive: Receive) -> Receive:
        seen, limit = 0, self.admission.max_body

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return capped


def principal_of(scope: Scope) -> Principal | None:
    return scope.get("state", {}).get("principal")
