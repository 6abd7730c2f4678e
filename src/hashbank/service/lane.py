"""The lane: uvicorn's HTTP protocol with a fast path for the one request every upload makes.

A request through ASGI costs a task, a scope, a dozen message dicts and as many middleware frames:
about as much CPU as the lookup itself at 10M entries. A *lane* is a handler the app registers for
one exact method and path (``app.state.lanes``, see ``MatchLane``); this protocol hands it the parsed
headers and body and writes its answer, with no ASGI in between. The lane says at the headers which
requests it takes (a key verified recently, the right role); everything else, and every other
path, goes to the ASGI app exactly as with uvicorn's own protocol.

It keeps uvicorn's connection rules: keep-alive and its timeout, ``Connection: close``, HTTP/1.0,
graceful shutdown, and pipelined requests answered in order (a lane request stands in uvicorn's queue
of request cycles like any other).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("hashbank.service.lane")

Header = tuple[bytes, bytes]


class Respond(Protocol):
    def __call__(self, status: int, body: bytes, headers: list[Header] | None = None, /) -> None: ...


class Lane(Protocol):
    method: bytes
    path: bytes

    def admit(self, headers: list[Header]) -> Any:
        """A ticket (e.g. the caller) if the lane takes this request, None to leave it to the app."""

    def handle(self, ticket: Any, headers: list[Header], body: bytes, respond: Respond) -> None:
        """Answer through ``respond``, now or later (once, from the event loop)."""

    def answered(self, status: int, seconds: float) -> None:
        """Count the answer (request metrics), ``seconds`` after the request's headers came in."""


def lanes_of(app: Any) -> dict[bytes, Lane]:
    """The lanes the app registered, looked for through the middleware uvicorn wraps around it."""
    for _ in range(8):
        lanes = getattr(getattr(app, "state", None), "lanes", None)
        if lanes is not None:
            return {lane.path: lane for lane in lanes}
        app = getattr(app, "app", None)
    return {}


class _NoEvent:
    """uvicorn sets the cycle's message event when the connection is lost; nothing waits on it here."""

    def set(self) -> None:
        pass


class LaneCycle:
    """One lane request, in the place of uvicorn's RequestResponseCycle: the protocol reads and sets
    the same attributes (``response_complete``, ``keep_alive``, ``disconnected``...)."""

    message_event = _NoEvent()

    def __init__(
        self, protocol: LaneProtocol, lane: Lane, ticket: Any, headers: list[Header], keep_alive: bool
    ) -> None:
        self.protocol, self.lane, self.ticket, self.headers = protocol, lane, ticket, headers
        self.started = time.perf_counter()
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.turn = False  # the responses before it are out (not pipelined behind one still running)
        self.disconnected = False
        self.response_complete = False

    def begin(self) -> None:
        """Its turn has come; it runs once its body is in too."""
        self.turn = True
        if not self.more_body:
            self.run()

    def body_done(self) -> None:
        self.more_body = False
        if self.turn:
            self.run()

    def run(self) -> None:
        body, self.body = bytes(self.body), bytearray()
        try:
            self.lane.handle(self.ticket, self.headers, body, self.respond)
        except Exception:
            log.exception("the %s lane failed", self.lane.path.decode())
            self.respond(500, b'{"detail":"internal error"}', [(b"connection", b"close")])

    def respond(self, status: int, body: bytes, headers: list[Header] | None = None) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        self.lane.answered(status, time.perf_counter() - self.started)
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return
        if headers and (b"connection", b"close") in headers:
            self.keep_alive = False
        out = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            out += [name, b": ", value, b"\r\n"]
        out += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers or ():
            if name != b"connection":
                out += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            out.append(b"connection: close\r\n")
        out += [b"\r\n", body]
        protocol.transport.write(b"".join(out))
        if protocol.access_log:
            protocol.access_logger.info('%s - "%s %s HTTP/1.1" %d', protocol.client_text, self.lane.method.decode(),
                                        self.lane.path.decode(), status)
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


class LaneProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the app's lanes taken before ASGI."""

    #: Called once the connection is gone (the dispatcher counts each worker's connections).
    on_lost: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lanes = lanes_of(self.app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.client_text = f"{self.client[0]}:{self.client[1]}" if self.client else "-"

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()

    def on_headers_complete(self) -> None:
        lane = self.lanes.get(self.url) if self.lanes else None
        if (
            lane is None
            or self.parser.get_method() != lane.method
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or any(name == b"transfer-encoding" for name, _ in self.headers)
        ):
            super().on_headers_complete()
            return
        ticket = lane.admit(self.headers)
        if ticket is None:
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        cycle = LaneCycle(self, lane, ticket, self.headers, keep_alive)
        existing, self.cycle = self.cycle, cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            cycle.begin()
        else:  # pipelined behind a request still being answered: queued, as uvicorn queues its own
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, None))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, LaneCycle):
            cycle.begin()
        else:
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        if isinstance(self.cycle, LaneCycle):
            self.cycle.body += body  # bounded: the lane took the request for its Content-Length
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if isinstance(self.cycle, LaneCycle):
            self.cycle.body_done()
        else:
            super().on_message_complete()
