"""Keeps this worker's index live: replays the store's change log into the Matcher on a short timer."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

log = logging.getLogger("hashbank.service.live")


class Follower:
    """A daemon thread calling ``matcher.catch_up()`` every ``interval`` seconds. Ready once the
    first catch-up (the index load) is done and while catch-ups keep succeeding."""

    def __init__(self, matcher: Any, interval: float) -> None:
        self.matcher, self.interval = matcher, interval
        self.loaded = False
        self.last_ok = 0.0
        self.applied = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hashbank-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def step(self) -> int:
        start = time.perf_counter()
        applied = self.matcher.catch_up()
        if not self.loaded:
            log.info("index loaded: %d entries in %.1f s", applied, time.perf_counter() - start)
            # What is alive now (app, store, index) lives as long as the worker: out of the collector's
            # full passes, which otherwise walk it all (~100k objects, ~90 ms with every request waiting).
            gc.freeze()
        self.applied += applied
        self.loaded, self.last_ok, self.error = True, time.monotonic(), None
        return applied

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the store may be briefly unreachable; keep trying
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("catching up with the change log failed: %s", self.error)
            self._stop.wait(self.interval)

    def status(self) -> dict[str, Any]:
        stale = time.monotonic() - self.last_ok if self.loaded else None
        fresh = stale is not None and stale < max(2.0, self.interval * 10)
        return {"ready": self.loaded and fresh, "loaded": self.loaded, "seconds_since_catch_up": stale,
                "changes_applied": self.applied, "error": self.error}
