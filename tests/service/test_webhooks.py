"""Webhooks: signed deliveries to a real receiver on 127.0.0.1; a failing receiver is retried with
backoff, dead-lettered, and replayed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest

from hashbank.service.webhooks import SIGNATURE_HEADER, verify
from tests.service.conftest import TEST_CONFIG, Api


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[float, dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(inner) -> None:
                body = inner.rfile.read(int(inner.headers["content-length"]))
                self.received.append((time.monotonic(), dict(inner.headers), body))
                inner.send_response(self.status)
                inner.send_header("content-length", "0")
                inner.end_headers()

            def log_message(inner, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def wait_for(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_signed_delivery_retry_dead_letter_and_replay(api: Api, receiver: Receiver) -> None:
    curator, matcher = api.auth("curator"), api.auth("matcher")
    api.client.post("/v1/banks", headers=curator, json={"name": "hooked"})
    value = "c" * 32
    api.client.post("/v1/banks/hooked/entries", headers=curator, json={"entries": [{"signal": "md5", "value": value}]})
    bad_url = api.client.post("/v1/banks/hooked/webhooks", headers=curator, json={"url": "file:///etc/passwd"})
    assert bad_url.status_code == 400
    hook = api.client.post("/v1/banks/hooked/webhooks", headers=curator, json={"url": receiver.url}).json()
    assert len(hook["secret"]) == 64
    listed = api.client.get("/v1/banks/hooked/webhooks", headers=curator).json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0] and "salt" not in listed[0]

    def matched() -> bool:
        body = {"items": [{"md5": value}], "banks": ["hooked"]}
        return bool(api.client.post("/v1/match", headers=matcher, json=body).json()["results"][0]["matches"])

    assert wait_for(matched, 3)
    assert wait_for(lambda: receiver.received)
    _, headers, body = receiver.received[0]
    assert verify(hook["secret"], body, headers[SIGNATURE_HEADER])
    assert not verify(hook["secret"], body + b" ", headers[SIGNATURE_HEADER])
    assert not verify("0" * 64, body, headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event"] == "match" and payload["bank"] == "hooked"
    assert payload["matches"][0]["value"] == value and payload["matches"][0]["actor"]

    # The receiver starts failing: every attempt is made, further apart each time, then dead-lettered.
    receiver.status = 500
    receiver.received.clear()
    assert matched()
    deliveries = f"/v1/banks/hooked/webhooks/{hook['id']}/deliveries"

    def dead() -> list[dict]:
        return api.client.get(f"{deliveries}?status=dead", headers=curator).json()["deliveries"]

    letters = wait_for(dead)
    assert len(letters) == 1 and letters[0]["attempts"] == TEST_CONFIG.webhook_attempts
    assert "HTTP 500" in letters[0]["last_error"]
    times = [at for at, _, _ in receiver.received]
    assert len(times) == TEST_CONFIG.webhook_attempts
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps[1] > gaps[0] >= TEST_CONFIG.webhook_backoff * 0.9

    # Fixed receiver: replaying the dead letter delivers it, the same body, signed again.
    receiver.status = 204
    replay = api.client.post(f"{deliveries}/{letters[0]['id']}/replay", headers=curator)
    assert replay.status_code == 200
    assert wait_for(lambda: not dead() and len(receiver.received) > TEST_CONFIG.webhook_attempts)
    assert receiver.received[-1][2] == receiver.received[0][2]
    assert verify(hook["secret"], receiver.received[-1][2], receiver.received[-1][1][SIGNATURE_HEADER])
    assert api.client.post(f"{deliveries}/{letters[0]['id']}/replay", headers=curator).status_code == 404
    assert api.client.delete(f"/v1/banks/hooked/webhooks/{hook['id']}", headers=curator).json() == {
        "deleted": hook["id"]}
