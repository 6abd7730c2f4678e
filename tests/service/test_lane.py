"""The lane (``POST /v1/match`` answered by the HTTP protocol, before ASGI) against a real uvicorn
server on 127.0.0.1: the same answers as the FastAPI route, the same refusals, the audit row before
the answer, and HTTP's connection rules (keep-alive, close, pipelining, clients that go away)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import func, select

from hashbank.service import create_app
from hashbank.service.keys import ROLES
from hashbank.service.lane import LaneProtocol
from hashbank.service.tables import audit_log
from hashbank.store import open_store
from tests.service.conftest import TEST_CONFIG, Api, free_port
from tests.service.test_routes import recompressed


@dataclass
class LaneServer:
    url: str
    port: int
    app: FastAPI

    @property
    def lane(self) -> Any:
        return self.lane_for(b"/v1/match")

    def lane_for(self, path: bytes) -> Any:
        (lane,) = [lane for lane in self.app.state.lanes if lane.path == path]
        return lane


@pytest.fixture(scope="module")
def lane_server(api: Api, db_url: str) -> Iterator[LaneServer]:
    """uvicorn with the lane protocol, in a thread, on the same store as ``api`` (its own app instance,
    as a second worker would be)."""
    store = open_store(db_url)
    app = create_app(store, config=TEST_CONFIG)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=LaneProtocol, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "lane server not ready"
        time.sleep(0.05)
    yield LaneServer(url, port, app)
    server.should_exit = True
    thread.join(timeout=15)
    store.close()


def post(key: str, body: bytes, path: str = "/v1/match", extra: str = "", kind: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP/1.1 responses (each with a Content-Length) read off a raw socket, in order."""
    data, out = b"", []
    sock.settimeout(10)
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            length = int(headers["content-length"])
            if len(data) >= end + 4 + length:
                out.append((int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + length]))
                data = data[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(out)} of {count} responses"
        data += chunk
    return out


def warm(server: LaneServer, keys: list[str]) -> None:
    """One request per key the ordinary way (the Guard verifies the key); the lane takes the next."""
    for key in keys:
        httpx.post(f"{server.url}/v1/match", headers={"Authorization": f"Bearer {key}"}, json={"items": [{}]})


def answered_200(server: LaneServer, admin_key: str) -> int:
    """hashbank_requests_total for POST /v1/match answered 200, from the server's /metrics."""
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {admin_key}"}).text
    line = 'hashbank_requests_total{route="/v1/match",method="POST",status="200"} '
    return next((int(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line)), 0)


def test_lane_answers_exactly_like_the_route(api: Api, lane_server: LaneServer) -> None:
    """Every role, a bank-scoped key, good and bad bodies: the lane gives the route's status and body."""
    admin = api.auth("admin")
    api.client.post("/v1/banks", headers=admin, json={"name": "lane"})
    api.client.post("/v1/banks/lane/entries", headers=admin,
                    json={"entries": [{"signal": "md5", "value": "d" * 32}, {"signal": "pdq", "value": "e" * 64}]})
    scoped = api.client.app.state.service.keys.create("matcher", ["elsewhere"])[1]
    keys = [api.keys[role] for role in ROLES] + [scoped]
    bodies = [b'{"items": [{"md5": "' + b"d" * 32 + b'"}, {"pdq": "' + b"e" * 63 + b'f"}, {"pdq": "zz"}, 7]}',
              b'{"items": [{"md5": "' + b"d" * 32 + b'"}], "banks": ["lane"], "threshold": 0}',
              b'{"items": [{"md5": "0"}], "banks": ["elsewhere"]}', b'{"items": [], "banks": 1}', b"{nope", b"",
              b'{"items": [{"md5": "0"}], "threshold": -1}', b'{"items": [{"md5": "0"}], "threshold": 500}',
              b'{"items": [' + b'{"md5": "0"}, ' * 1001 + b"{}]}",
              b'{"items": [{"md5": "' + b"0" * 32 + b'"}, {"pdq": "' + b"0" * 64 + b'"}]}']  # found nothing
    deadline = time.monotonic() + 10
    probe = post(api.keys["admin"], b'{"items": [{"md5": "' + b"d" * 32 + b'"}]}')
    warm(lane_server, keys)
    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        while True:  # both apps follow the store: wait until the lane's sees the new entries
            sock.sendall(probe)
            if json.loads(read_responses(sock, 1)[0][2])["results"][0]["matches"]:
                break
            assert time.monotonic() < deadline, "the entry never became matchable through the lane"
            time.sleep(0.02)
        before, counted = lane_server.lane.handled, answered_200(lane_server, api.keys["admin"])
        sock.sendall(b"".join(post(key, body) for key in keys for body in bodies))  # pipelined, too
        through_lane = [(status, json.loads(body)) for status, _, body in read_responses(sock, len(keys) * len(bodies))]
    ok = sum(status == 200 for status, _ in through_lane)
    assert answered_200(lane_server, api.keys["admin"]) - counted == ok, "lane answers missing from /metrics"
    through_route = [(r.status_code, r.json()) for key in keys for body in bodies
                     for r in [api.client.post("/v1/match", headers={"Authorization": f"Bearer {key}"}, content=body)]]
    assert through_lane == through_route
    assert {status for status, _ in through_lane} >= {200, 400, 403, 413}
    may_match = sum(ROLES[role] >= {"match"} for role in ROLES) + 1
    assert lane_server.lane.handled - before == may_match * len(bodies), "the lane did not take what it should"


def test_file_lane_answers_exactly_like_the_route(api: Api, lane_server: LaneServer, shared_data: Path) -> None:
    """Uploads (raw and multipart, matching and not, corrupt, empty, a decompression bomb) from every
    role and a bank-scoped key: the lane gives the route's status and body."""
    photo = (shared_data / "kodak24" / "images" / "kodim05.png").read_bytes()
    smaller = recompressed(photo)
    admin = api.auth("admin")
    api.client.post("/v1/banks", headers=admin, json={"name": "lanefile"})
    added = api.client.post("/v1/banks/lanefile/content", headers=admin, content=smaller)
    assert added.status_code in (200, 201), added.text
    bomb = io.BytesIO()
    Image.new("L", (3000, 3000)).save(bomb, "PNG")  # over the 4 MP test limit
    boundary = "lanetest"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    uploads = [(photo, "application/octet-stream"), (smaller, "image/jpeg"),
               (form, f"multipart/form-data; boundary={boundary}"),
               (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"), (b"", "application/octet-stream"),
               (bomb.getvalue(), "image/png"), (b"--x\r\n", "multipart/form-data")]
    scoped = api.client.app.state.service.keys.create("matcher", ["elsewhere"])[1]
    keys = [api.keys[role] for role in ROLES] + [scoped]
    warm(lane_server, keys)
    probe = post(api.keys["admin"], smaller, "/v1/match/file", kind="image/jpeg")
    deadline = time.monotonic() + 10
    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        while True:  # until the lane's app has followed the store to the new entry
            sock.sendall(probe)
            if json.loads(read_responses(sock, 1)[0][2])["matches"]:
                break
            assert time.monotonic() < deadline, "the entry never became matchable through the lane"
            time.sleep(0.02)
        before = lane_server.lane_for(b"/v1/match/file").handled
        sock.sendall(b"".join(post(key, body, "/v1/match/file", kind=kind) for key in keys for body, kind in uploads))
        answers = read_responses(sock, len(keys) * len(uploads))
    through_lane = [(status, json.loads(body)) for status, _, body in answers]
    through_route = [
        (r.status_code, r.json()) for key in keys for body, kind in uploads
        for r in [api.client.post("/v1/match/file", content=body,
                                  headers={"Authorization": f"Bearer {key}", "Content-Type": kind})]
    ]
    assert through_lane == through_route
    assert {status for status, _ in through_lane} >= {200, 400, 403, 413, 422}
    assert any(answer.get("matches") for _, answer in through_lane)
    may_match = sum(ROLES[role] >= {"match"} for role in ROLES) + 1
    assert lane_server.lane_for(b"/v1/match/file").handled - before == may_match * len(uploads)


def test_pipelined_lane_and_asgi_requests_are_answered_in_order(api: Api, lane_server: LaneServer) -> None:
    key = api.keys["admin"]
    warm(lane_server, [key])
    before = lane_server.lane.handled
    burst = [post(key, b'{"items": [{"md5": "' + b"%x" % i * 32 + b'"}]}') for i in range(3)]
    get = f"GET /v1/banks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        sock.sendall(burst[0] + get + burst[1] + get + burst[2])
        answers = read_responses(sock, 5)
    assert [status for status, _, _ in answers] == [200] * 5
    assert [("results" in json.loads(body)) for _, _, body in answers] == [True, False, True, False, True]
    assert isinstance(json.loads(answers[1][2]), list | dict) and "results" not in json.loads(answers[1][2])
    assert lane_server.lane.handled - before == 3


def test_connection_close_and_http_1_0_end_the_connection(api: Api, lane_server: LaneServer) -> None:
    key = api.keys["matcher"]
    warm(lane_server, [key])
    body = b'{"items": [{"md5": "' + b"0" * 32 + b'"}]}'
    for request in (post(key, body, extra="Connection: close\r\n"),
                    post(key, body).replace(b"HTTP/1.1", b"HTTP/1.0", 1)):
        with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
            sock.sendall(request)
            ((status, headers, answer),) = read_responses(sock, 1)
            assert status == 200 and json.loads(answer)["results"] == [{"matches": []}]
            assert headers["connection"] == "close"
            assert sock.recv(10) == b"", "the server kept the connection open"


def test_the_audit_row_is_committed_before_the_answer(api: Api, lane_server: LaneServer) -> None:
    key_id, key = api.client.app.state.service.keys.create("matcher", name="lane audit")
    warm(lane_server, [key])
    before = lane_server.lane.handled

    def rows() -> int:
        with api.store.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(audit_log).where(audit_log.c.actor == key_id))

    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        for i in range(1, 6):
            sock.sendall(post(key, b'{"items": [{"md5": "' + b"1" * 32 + b'"}]}'))
            assert read_responses(sock, 1)[0][0] == 200
            assert rows() == 1 + i  # the warm-up's row, then one per answer, each there when it arrives
    assert lane_server.lane.handled - before == 5


def test_rate_limit_and_size_limit_in_the_lane(api: Api, lane_server: LaneServer) -> None:
    key = api.client.app.state.service.keys.create("matcher", name="slow", rate_limit=1.0)[1]
    warm(lane_server, [key])  # spends the bucket's first tokens
    body = b'{"items": [{"md5": "' + b"2" * 32 + b'"}]}'
    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        sock.sendall(post(key, body) * 4)
        answers = read_responses(sock, 4)
    assert answers[-1][0] == 429 and "rate limit" in json.loads(answers[-1][2])["detail"]
    assert int(answers[-1][1]["retry-after"]) >= 1
    big = TEST_CONFIG.max_upload_bytes + 64 * 1024 + 1
    admin = api.keys["admin"]
    with socket.create_connection(("127.0.0.1", lane_server.port)) as sock:
        sock.sendall(f"POST /v1/match HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n"
                     f"Content-Length: {big}\r\n\r\n".encode())
        ((status, _, answer),) = read_responses(sock, 1)
    assert status == 413 and "limit" in json.loads(answer)["detail"]


def test_clients_that_go_away_do_not_stop_the_server(api: Api, lane_server: LaneServer) -> None:
    key = api.keys["matcher"]
    warm(lane_server, [key])
    body = b'{"items": [{"md5": "' + b"3" * 32 + b'"}]}'
    for cut in (post(key, body)[:-5], post(key, body) * 20):  # mid-body; and gone before 20 answers
        sock = socket.create_connection(("127.0.0.1", lane_server.port))
        sock.sendall(cut)
        sock.close()
    time.sleep(0.2)
    answer = httpx.post(f"{lane_server.url}/v1/match", headers={"Authorization": f"Bearer {key}"},
                        content=body)
    assert answer.status_code == 200 and answer.json()["results"] == [{"matches": []}]
