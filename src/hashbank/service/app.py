"""The FastAPI app factory: one Service (store, keys, matcher, records, limits) per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hashbank.media import MediaLimits
from hashbank.service.config import ServiceConfig
from hashbank.service.guard import Admission, Guard, RateLimiter
from hashbank.service.keys import KeyRing
from hashbank.service.live import Follower
from hashbank.service.metrics import Metrics
from hashbank.service.records import AuditUnavailable, Recorder
from hashbank.service.webhooks import Dispatcher
from hashbank.signals.compute import HashResult, hash_bytes
from hashbank.store import AlreadyExists, NotFound, Store, open_store


@dataclass
class Service:
    """Everything a route needs, reached as ``request.app.state.service``."""

    store: Store
    config: ServiceConfig
    matcher: Any
    keys: KeyRing
    records: Recorder
    follower: Follower
    metrics: Metrics = field(default_factory=Metrics)
    #: Uploads are hashed here: a few threads, not a thread per request. Decoding is CPU work, and
    #: dozens of threads decoding at once on a few cores only fight over the cores and the GIL.
    hashers: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.hashers = ThreadPoolExecutor(self.config.hash_threads or os.cpu_count() or 2, "hashbank-hash")

    @property
    def media_limits(self) -> MediaLimits:
        return MediaLimits(max_bytes=self.config.max_upload_bytes, max_pixels=self.config.max_pixels)

    def hash_soon(self, data: bytes, **options: Any) -> asyncio.Future[HashResult]:
        """``hash_bytes`` of an upload on the hashing threads, within the service's media limits."""
        work = functools.partial(hash_bytes, data, limits=self.media_limits, **options)
        return asyncio.get_running_loop().run_in_executor(self.hashers, work)


async def service_of(request: Request) -> Service:
    """Async on purpose: FastAPI runs sync dependencies in its threadpool, a thread hop per request."""
    return request.app.state.service


def _default_matcher(store: Store) -> Any:
    from hashbank.matching import Matcher

    return Matcher(store)


def _status(code: int) -> Callable[[Request, Exception], JSONResponse]:
    """Store errors become 4xx with their message as the reason."""

    def handle(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle


def create_app(
    store: Store | None = None,
    *,
    url: str | None = None,
    config: ServiceConfig | None = None,
    matcher_factory: Callable[[Store], Any] = _default_matcher,
) -> FastAPI:
    """The hashbank HTTP API over ``store`` (default: open_store(url), i.e. HASHBANK_DATABASE_URL).

    Background work starts with the app's lifespan: following the change log, writing the audit
    and match logs, sending webhooks."""
    from hashbank.service.routers import ROUTERS
    from hashbank.service.routers.matching import MatchFileLane, MatchLane

    store = store or open_store(url)
    config = config or ServiceConfig.from_env()
    matcher = matcher_factory(store)
    records = Recorder(store.engine, linger=config.flush_interval, timeout=config.request_timeout)
    service = Service(store, config, matcher, KeyRing(store.engine, config.key_cache_seconds), records,
                      Follower(matcher, config.follow_interval))
    dispatcher = Dispatcher(store.engine, poll=config.webhook_poll, timeout=config.webhook_timeout,
                            attempts=config.webhook_attempts, backoff=config.webhook_backoff)
    service.metrics.gauges["index_ready"] = lambda: float(service.follower.status()["ready"])
    service.metrics.gauges["changes_applied"] = lambda: float(service.follower.applied)
    service.metrics.gauges["webhooks_delivered"] = lambda: float(dispatcher.sent)
    service.metrics.gauges["webhooks_dead_lettered"] = lambda: float(dispatcher.failed)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.follower.start()
        records.start()
        tasks = [asyncio.create_task(dispatcher.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            service.follower.stop()
            await asyncio.to_thread(records.stop)
            service.hashers.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="hashbank",
        summary="Match uploads against banks of known abuse-media fingerprints. Every route but "
        "/healthz and /readyz needs an API key: `Authorization: Bearer hb_...` (or as the Basic password).",
        version="1",
        lifespan=lifespan,
        telemetry=None if config.otel else {"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.add_exception_handler(NotFound, _status(404))
    app.add_exception_handler(AlreadyExists, _status(409))
    app.add_exception_handler(ValueError, _status(400))
    app.add_exception_handler(AuditUnavailable, _status(503))
    for router in ROUTERS:
        app.include_router(router)
    admission = Admission(service.keys, RateLimiter(config.rate_limit, config.rate_burst), service.metrics,
                          max_body=config.max_upload_bytes + 64 * 1024)
    app.add_middleware(Guard, admission=admission, timeout=config.request_timeout)
    #: Served before ASGI by ``lane.LaneProtocol`` (what ``hashbank serve`` runs); other servers ignore it.
    app.state.lanes = [MatchLane(service, admission), MatchFileLane(service, admission)]
    return app
