"""`hashbank serve --workers 2` spreads keep-alive connections evenly over its workers, follows
closes, keeps serving through a worker's death, and what one worker adds the other matches within a
second (a real server; which worker holds a connection is read from /proc)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from hashbank.service.keys import KeyRing
from hashbank.signals.compute import hash_file
from hashbank.store import open_store

REQUEST = b"GET /readyz HTTP/1.1\r\nhost: test\r\n\r\n"


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def established(port: int) -> dict[int, str]:
    """The server's established connections on ``port``: client's port -> socket inode."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            out[int(fields[2].split(":")[1], 16)] = fields[9]
    return out


def holders(server_pid: int, port: int) -> dict[str, int]:
    """Socket inode -> the worker pid holding it, for the server's established connections on ``port``."""
    inodes = set(established(port).values())
    held = {}
    for pid in children(server_pid):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
                if match and match.group(1) in inodes:
                    held[match.group(1)] = pid
        except FileNotFoundError:  # exited meanwhile
            continue
    return held


def owners(server_pid: int, port: int) -> dict[int, int]:
    """Worker pid -> connections it holds on ``port``."""
    return dict(Counter(holders(server_pid, port).values()))


def connect(port: int, n: int) -> list[socket.socket]:
    """``n`` keep-alive connections, each answered once (so a worker holds it; a worker still loading
    its index answers 503)."""
    conns = []
    for _ in range(n):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(REQUEST)
        assert answer(conn)[0] in (200, 503), "readyz not answered"
        conns.append(conn)
    return conns


def settled(server_pid: int, port: int, expected: int) -> dict[int, int]:
    """The owners once ``expected`` connections are held (closes take a moment to reach the workers)."""
    deadline = time.monotonic() + 5
    while True:
        held = owners(server_pid, port)
        if sum(held.values()) == expected or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


def call(conn: socket.socket, method: str, path: str, key: str, body: bytes = b"",
         content_type: str = "application/json") -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: (status, body)."""
    head = (f"{method} {path} HTTP/1.1\r\nhost: test\r\nx-api-key: {key}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n\r\n")
    conn.sendall(head.encode() + body)
    return answer(conn)


def answer(conn: socket.socket) -> tuple[int, bytes]:
    """The next whole response on ``conn``: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head_bytes, rest = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head_bytes, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += conn.recv(65536)
    return int(head_bytes[9:12]), rest


@pytest.fixture(scope="module")
def server(serve):  # type: ignore[no-untyped-def]
    return serve(workers=2)


def test_connections_are_spread_evenly_and_closes_are_followed(server) -> None:  # type: ignore[no-untyped-def]
    port, pid = int(server.url.rsplit(":", 1)[1]), server.process.pid
    conns = connect(port, 32)
    held = settled(pid, port, 32)
    assert sorted(held.values()) == [16, 16], held
    # Close 12 of one worker's connections: the next 12 all go to it, as it now holds the fewest.
    busy = next(iter(held))
    mine = [c for c in conns if _holder(pid, port, c) == busy][:12]
    for conn in mine:
        conns.remove(conn)
        conn.close()
    assert sorted(settled(pid, port, 20).values()) == [4, 16]
    time.sleep(0.2)  # the workers' close reports reach the parent
    conns += connect(port, 12)
    assert sorted(settled(pid, port, 32).values()) == [16, 16]
    for conn in conns:
        conn.close()


def test_a_killed_worker_is_replaced_and_the_other_keeps_serving(server) -> None:  # type: ignore[no-untyped-def]
    port, pid = int(server.url.rsplit(":", 1)[1]), server.process.pid
    conns = connect(port, 8)
    held = settled(pid, port, 8)
    victim, survivor = sorted(held)
    os.kill(victim, signal.SIGKILL)
    # A connection handed to it in the instant it dies is lost with it (as with any crash): wait until
    # the server has reaped it (all its threads gone, so its descriptors are closed).
    while victim in children(pid):
        time.sleep(0.01)
    # Meanwhile every new connection is served (by the survivor, then also by the replacement).
    deadline = time.monotonic() + 60
    while True:
        conns += connect(port, 2)
        replacement = [p for p in owners(pid, port) if p not in (victim, survivor)]
        if replacement or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert replacement, "the killed worker was not replaced"
    # The survivor holds 4 + what came while the replacement started; the replacement now takes the
    # new connections until it holds as many.
    before = owners(pid, port)
    more = before[survivor] - before[replacement[0]]
    conns += connect(port, more)
    after = settled(pid, port, sum(before.values()) + more)
    assert after[replacement[0]] == after[survivor], after
    for conn in conns:
        conn.close()


def _holder(server_pid: int, port: int, conn: socket.socket) -> int:
    """The worker holding the server's end of ``conn`` (its local port is the server's peer port)."""
    peer = conn.getsockname()[1]
    pid = holders(server_pid, port).get(established(port)[peer])
    assert pid is not None, f"no worker holds the connection from port {peer}"
    return pid


def test_an_add_through_one_worker_is_matched_through_the_other(server, db_url: str, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """Two connections held by the two workers of one server: what one adds, the other matches within 1 s."""
    port, pid = int(server.url.rsplit(":", 1)[1]), server.process.pid
    with open_store(db_url) as store:
        store.create_bank("spread")
        ring = KeyRing(store.engine)
        curator, matcher = ring.create("curator", ["spread"])[1], ring.create("matcher")[1]
    a, b = connect(port, 2)
    assert _holder(pid, port, a) != _holder(pid, port, b)
    photos = sorted((shared_data / "imagenet-sample-1000" / "images").glob("*.JPEG"))[:2]

    def seconds_until_matched(conn: socket.socket, sha256: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < 5:
            query = json.dumps({"items": [{"sha256": sha256}]}).encode()
            status, body = call(conn, "POST", "/v1/match", matcher, query)
            assert status == 200, body
            if json.loads(body)["results"][0]["matches"]:
                return time.monotonic() - start
            time.sleep(0.02)
        return float("inf")

    upload = photos[0].read_bytes()
    status, body = call(a, "POST", "/v1/banks/spread/content", curator, upload, "application/octet-stream")
    assert status in (200, 201), body
    assert seconds_until_matched(b, json.loads(body)["signals"]["sha256"]) <= 1.0
    value = hash_file(photos[1]).sha256
    entries = json.dumps({"entries": [{"signal": "sha256", "value": value}]}).encode()
    status, body = call(b, "POST", "/v1/banks/spread/entries", curator, entries)
    assert status in (200, 201), body
    assert seconds_until_matched(a, value) <= 1.0
    a.close()
    b.close()


def test_workers_stop_when_the_server_process_is_killed(serve) -> None:  # type: ignore[no-untyped-def]
    """No orphans: a worker whose parent is gone (SIGKILL, no chance to stop them) finishes and exits."""
    server = serve(workers=2)
    workers = children(server.process.pid)
    assert len(workers) >= 2
    server.process.kill()
    server.process.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers outlived the server"
