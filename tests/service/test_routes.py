"""Hash, match, banks, feed, export, audit and review through the API; bad uploads are refused with a
reason and the server goes on serving."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from hashbank.signals.compute import hash_bytes
from tests.service.conftest import TEST_CONFIG, Api


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> bytes:
    return (shared_data / "kodak24" / "images" / "kodim05.png").read_bytes()


def recompressed(data: bytes, scale: float = 0.6, quality: int = 70) -> bytes:
    """A positive: the same photo smaller and recompressed (a different file, a near PDQ)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def eventually(check, timeout: float = 3.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def assert_serving(api: Api, photo: bytes) -> None:
    assert api.client.get("/healthz").status_code == 200
    assert api.client.post("/v1/hash?signals=md5", headers=api.auth("matcher"), content=photo).status_code == 200


def test_hash_upload_matches_the_library(api: Api, photo: bytes) -> None:
    expected = hash_bytes(photo).signals
    raw = api.client.post("/v1/hash", headers=api.auth("matcher"), content=photo)
    form = api.client.post("/v1/hash", headers=api.auth("matcher"), files={"file": ("a.png", photo, "image/png")})
    for response in (raw, form):
        assert response.status_code == 200, response.text
        body = response.json()
        assert {name: body[name] for name in expected} == expected
        assert body["pdq_quality"] > 50 and (body["width"], body["height"]) == (768, 512)
    only = api.client.post("/v1/hash?signals=sha256", headers=api.auth("matcher"), content=photo).json()
    assert only["sha256"] == expected["sha256"] and "pdq" not in only
    bad = api.client.post("/v1/hash?signals=nope", headers=api.auth("matcher"), content=photo)
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]


def test_bad_uploads_are_refused_and_the_server_goes_on(api: Api, photo: bytes) -> None:
    headers = api.auth("matcher")
    too_big = b"\xff" * (TEST_CONFIG.max_upload_bytes + 200_000)
    response = api.client.post("/v1/hash", headers=headers, content=too_big)
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the cap applies while the body streams in
        for _ in range(40):
            yield b"\0" * 100_000

    response = api.client.post("/v1/match/file", headers=headers, content=chunks())
    assert response.status_code == 413, response.text
    assert_serving(api, photo)

    for corrupt in (b"not an image at all", photo[: len(photo) // 3], b"\x89PNG\r\n\x1a\n" + b"\0" * 64):
        response = api.client.post("/v1/match/file", headers=headers, content=corrupt)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["detail"].startswith("cannot hash the upload")
    empty = api.client.post("/v1/hash", headers=headers, content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]

    bomb = io.BytesIO()
    Image.new("L", (3000, 3000)).save(bomb, "PNG")  # 9 MP in ~10 kB, over the 4 MP test limit
    assert len(bomb.getvalue()) < 100_000
    response = api.client.post("/v1/hash", headers=headers, content=bomb.getvalue())
    assert response.status_code == 413 and "pixel" in response.json()["detail"], response.text
    assert_serving(api, photo)


def test_batch_limits_and_bad_items(api: Api) -> None:
    headers = api.auth("matcher")
    too_many = {"items": [{"md5": "0" * 32}] * (TEST_CONFIG.max_batch + 1)}
    response = api.client.post("/v1/match", headers=headers, json=too_many)
    assert response.status_code == 413 and "batch" in response.json()["detail"]
    assert api.client.post("/v1/match", headers=headers, content=b"{nope").status_code == 400
    assert api.client.post("/v1/match", headers=headers, json={"items": []}).status_code == 400
    mixed = {"items": [{"md5": "0" * 32}, {"pdq": "xyz"}, {"nosuchsignal": "00"}, "text", {"md5": "1" * 32}]}
    results = api.client.post("/v1/match", headers=headers, json=mixed).json()["results"]
    assert [("error" in r) for r in results] == [False, True, True, True, False]
    assert results[1]["error"].startswith("item 1") and results[3]["error"].startswith("item 3")


def test_bank_content_match_review_and_logs(api: Api, photo: bytes) -> None:
    admin, curator, matcher = api.auth("admin"), api.auth("curator"), api.auth("matcher")
    created = api.client.post("/v1/banks", headers=curator, json={"name": "known", "description": "test bank"})
    assert created.status_code == 201, created.text
    assert api.client.post("/v1/banks", headers=curator, json={"name": "known"}).status_code == 409
    assert api.client.get("/v1/banks/nosuch", headers=curator).status_code == 404
    added = api.client.post("/v1/banks/known/content?category=1", headers=curator, content=photo).json()
    assert added["added"] == 4 and added["signals"] == hash_bytes(photo).signals

    positive = recompressed(photo)
    assert hash_bytes(positive).sha256 != added["signals"]["sha256"]

    def found() -> list[dict]:
        response = api.client.post("/v1/match/file", headers=matcher, content=positive)
        assert response.status_code == 200, response.text
        return response.json()["matches"]

    matches = eventually(found)
    assert [(m["bank"], m["signal"]) for m in matches] == [("known", "pdq")]
    assert 0 < matches[0]["distance"] <= 31 and matches[0]["category"] == "1"
    exact = api.client.post("/v1/match", headers=matcher, json={"items": [{"sha256": added["signals"]["sha256"]}]})
    assert [m["distance"] for m in exact.json()["results"][0]["matches"]] == [0]
    other = Image.new("RGB", (256, 256), (10, 200, 30))
    buf = io.BytesIO()
    other.save(buf, "PNG")
    assert api.client.post("/v1/match/file", headers=matcher, content=buf.getvalue()).json()["matches"] == []

    entries = api.client.get("/v1/banks/known/entries", headers=curator).json()["entries"]
    assert {e["signal"] for e in entries} == {"md5", "sha1", "sha256", "pdq"}
    feed = api.client.get("/v1/changes?since=0&bank=known", headers=curator).json()
    assert {c["entry_id"] for c in feed["changes"]} == {e["id"] for e in entries} and feed["next"] > 0
    assert api.client.get(f"/v1/changes?since={feed['next']}&bank=known", headers=curator).json()["changes"] == []
    exported = api.client.get("/v1/banks/known/export", headers=curator)
    assert sorted(json.loads(line)["value"] for line in exported.text.splitlines()) == sorted(
        added["signals"].values())

    queue = api.client.get("/v1/review?bank=known", headers=curator).json()["matches"]
    pdq_row = next(row for row in queue if row["signal"] == "pdq")
    verdict = {"verdict": "false_positive", "disable_entry": True, "note": "not the same picture"}
    reviewed = api.client.post(f"/v1/review/{pdq_row['id']}", headers=curator, json=verdict)
    assert reviewed.json() == {"id": pdq_row["id"], "review": "false_positive", "entry_disabled": True}
    assert eventually(lambda: found() == [])
    open_ids = {row["id"] for row in api.client.get("/v1/review", headers=curator).json()["matches"]}
    assert pdq_row["id"] not in open_ids

    rows = api.client.get("/v1/audit?limit=1000", headers=api.auth("auditor")).json()["rows"]
    actions = {row["action"] for row in rows}
    assert {"bank.create", "content.add", "match", "review", "bank.export"} <= actions
    assert all(row["actor"] and row["at"] for row in rows)
    assert all(len(json.dumps(row)) < 2000 for row in rows)  # who/what/when, never the media
    keys = set(api.keys.values())
    assert not any(key in json.dumps(row) for row in rows for key in keys)

    renamed = api.client.patch("/v1/banks/known", headers=admin, json={"description": "d2", "enabled": False})
    assert renamed.json()["description"] == "d2" and renamed.json()["enabled"] is False
    gone = api.client.delete("/v1/banks/known", headers=admin).json()
    assert gone["entries"] == 4
    assert api.client.get("/v1/banks/known", headers=admin).status_code == 404


def test_entries_crud(api: Api) -> None:
    curator = api.auth("curator")
    api.client.post("/v1/banks", headers=curator, json={"name": "crud"})
    body = {"entries": [{"signal": "md5", "value": "a" * 32, "category": "1"}, {"signal": "md5", "value": "bad"}]}
    added = api.client.post("/v1/banks/crud/entries", headers=curator, json=body).json()
    assert added["added"] == 1 and added["errors"][0]["position"] == 1
    too_many = {"entries": [{"signal": "md5", "value": "a" * 32}] * 1001}
    assert api.client.post("/v1/banks/crud/entries", headers=curator, json=too_many).status_code == 422
    entry = api.client.get("/v1/banks/crud/entries", headers=curator).json()["entries"][0]
    patch = api.client.patch(f"/v1/banks/crud/entries/{entry['id']}", headers=curator, json={"note": "checked"})
    assert patch.json() == {"updated": 1}
    assert api.client.delete(f"/v1/banks/crud/entries/{entry['id']}", headers=curator).json() == {"deleted": 1}
    assert api.client.delete(f"/v1/banks/crud/entries/{entry['id']}", headers=curator).status_code == 404
