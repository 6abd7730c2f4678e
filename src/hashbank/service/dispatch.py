"""Connections handed to workers one by one, each to the worker holding the fewest.

Why: a platform's upload pipeline holds a few dozen keep-alive connections and sends every request
down them, so how the *connections* fall across workers is how the *load* falls. Sharing one
listening socket gave one worker nearly all of them (31 of 32 in the service benchmark); a
SO_REUSEPORT socket per worker lets the kernel hash them, which is a coin toss per connection:
one run in five gave a worker 20 or more of 32 (it then has 60% of the traffic and its p99 goes
past the bar while the other core idles). So the parent accepts, and passes each connection's
descriptor (SCM_RIGHTS over a Unix socket pair) to the worker with the fewest open; workers say
when one closes. The parent's cost is per connection, not per request, and a worker that dies or
has not started yet is given none (at start, nothing is accepted until every worker serves).

Messages on a worker's channel: parent to worker, one descriptor each; worker to parent, ``r``
(serving: send me connections) and ``-`` (one of them closed). A worker whose parent is gone
(the channel's end of file) stops gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import selectors
import socket
import time
from typing import Any

import uvicorn

log = logging.getLogger("hashbank.service.dispatch")

READY, CLOSED = b"r", b"-"


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(parent's end, worker's end): message boundaries kept, and end of file when a side is gone."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Dispatcher:
    """The parent's side: accepts on the listening socket and hands connections to workers."""

    def __init__(self, listener: socket.socket, workers: int, boot_wait: float = 30.0) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.channels: list[socket.socket | None] = [None] * workers
        self.ready = [False] * workers
        #: Connections each worker holds (handed and not yet reported closed).
        self.open = [0] * workers
        self._turn = 0  # which worker wins a tie next (round robin among the least loaded)
        self._listening = False
        #: At start, accepting waits for every worker (else the first up takes every early
        #: keep-alive connection for good), or this long for those that do come up.
        self._booting_until = time.monotonic() + boot_wait

    def attach(self, worker: int) -> socket.socket:
        """A fresh channel for worker slot ``worker`` (at start, and for a worker that replaces a dead
        one); returns the worker's end to give it."""
        self._detach(worker)
        ours, theirs = channel_pair()
        ours.setblocking(False)
        self.channels[worker] = ours
        self.selector.register(ours, selectors.EVENT_READ, worker)
        return theirs

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for connections and workers' messages, and handle them."""
        if self._booting_until and (all(self.ready) or time.monotonic() > self._booting_until):
            self._booting_until = 0.0
        self._listen(any(self.ready) and not self._booting_until)
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._accept()
            else:
                self._read(key.data)

    def close(self) -> None:
        """Stop accepting (connections not yet accepted stay in the kernel's queue until it closes)."""
        self._listen(False)
        self.listener.close()
        for worker in range(len(self.channels)):
            self._detach(worker)
        self.selector.close()

    def _listen(self, on: bool) -> None:
        # Not accepting while no worker serves: the connections wait in the backlog, not in a channel.
        if on != self._listening:
            if on:
                self.selector.register(self.listener, selectors.EVENT_READ, None)
            else:
                self.selector.unregister(self.listener)
            self._listening = on

    def _detach(self, worker: int) -> None:
        channel = self.channels[worker]
        if channel is not None:
            self.selector.unregister(channel)
            channel.close()
        self.channels[worker], self.ready[worker], self.open[worker] = None, False, 0

    def _accept(self) -> None:
        for _ in range(64):  # then back to the workers' messages
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the connection waits in the backlog
                log.warning("accepting a connection failed: %s", exc)
                return
            with conn:  # the worker has its own descriptor once handed; ours is closed either way
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._hand(conn)

    def _hand(self, conn: socket.socket) -> None:
        n = len(self.channels)
        order = sorted((i for i in range(n) if self.ready[i]), key=lambda i: (self.open[i], (i - self._turn) % n))
        self._turn = (self._turn + 1) % n
        for worker in order:
            channel = self.channels[worker]
            assert channel is not None
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
            except OSError:  # gone or not reading: the next worker takes it
                continue
            self.open[worker] += 1
            return
        log.warning("no worker could take a connection; it is closed")

    def _read(self, worker: int) -> None:
        channel = self.channels[worker]
        assert channel is not None
        while True:
            try:
                message = channel.recv(16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if not message:  # the worker is gone; its slot gets a new channel when it is replaced
                self._detach(worker)
                return
            if message == READY:
                self.ready[worker] = True
            elif message == CLOSED:
                self.open[worker] = max(0, self.open[worker] - 1)


class HandedServer(uvicorn.Server):
    """A worker's uvicorn server whose connections come from the dispatcher's channel rather than a
    listening socket of its own; everything else (lifespan, keep-alive, graceful shutdown) is
    uvicorn's."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # lifespan; no listener
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive, loop)
        self._tell(READY)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets)
        self.channel.close()

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.channel, 16, 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # the parent is gone: finish what is open, then stop
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                loop.create_task(self._serve_connection(loop, sock))

    async def _serve_connection(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, sock)
        except OSError:
            sock.close()
            self._tell(CLOSED)

    def _protocol(self) -> Any:
        config = self.config
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.server_state, app_state=self.lifespan.state
        )
        protocol.on_lost = self._closed
        return protocol

    def _closed(self) -> None:
        self._tell(CLOSED)

    def _tell(self, message: bytes) -> None:
        # A lost message only skews the balance a little; it must never fail a connection.
        with contextlib.suppress(OSError):
            self.channel.send(message)
