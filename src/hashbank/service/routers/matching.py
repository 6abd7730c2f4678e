"""Hash an upload, match an upload, match a batch of fingerprints — the per-upload hot path."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from hashbank.service.app import Service, service_of
from hashbank.service.auth import require, scoped_banks
from hashbank.service.guard import Admission, key_and_length, refusal_body
from hashbank.service.keys import Principal
from hashbank.service.lane import Respond
from hashbank.service.records import now
from hashbank.service.uploads import read_upload, upload_of
from hashbank.signals.compute import HashResult, resolve_signals

log = logging.getLogger("hashbank.service.match")
router = APIRouter(prefix="/v1", tags=["match"])
ServiceDep = Annotated[Service, Depends(service_of)]
UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
        },
        "description": "The file, as the raw body or a multipart 'file' field. It is hashed in memory and "
        "forgotten.",
    }
}
BATCH_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "maxItems": 1000,
                            "description": "Up to 1,000 items, each the fingerprints of one piece of content.",
                            "items": {"type": "object", "additionalProperties": {"type": "string"},
                                      "example": {"pdq": "f" * 64, "md5": "0" * 32}},
                        },
                        "banks": {"type": "array", "items": {"type": "string"}},
                        "threshold": {"type": "integer", "minimum": 0},
                    },
                }
            }
        },
    }
}


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status, media_type="application/json")


def match_json(match: Any) -> dict[str, Any]:
    return {
        "bank": match.bank,
        "entry_id": match.entry_id,
        "category": match.category,
        "signal": match.signal,
        "value": match.value,
        "distance": match.distance,
        "query_signal": match.query_signal,
    }


async def hash_upload(request: Request, service: Service, signals: str | None, dihedral: bool) -> HashResult:
    """Fingerprints of the upload, or a 4xx saying why there are none."""
    chosen = None
    if signals:
        try:
            chosen = resolve_signals([s.strip() for s in signals.split(",") if s.strip()])
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
    data = await read_upload(request, service.config)
    return hashed(await service.hash_soon(data, signals=chosen, dihedral=dihedral))


def hashed(result: HashResult) -> HashResult:
    """The result if the upload could be hashed, else the 4xx saying why not."""
    if result.error:
        status = 413 if "limit" in result.error else 422
        raise HTTPException(status, f"cannot hash the upload: {result.error}")
    return result


def file_answer(
    service: Service, result: HashResult, banks: list[str] | None, threshold: int | None, dihedral: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``POST /v1/match/file``'s answer for a hashed upload, and the matches in it to log."""
    found = [match_json(m) for m in service.matcher.match(result, banks=banks, threshold=threshold, dihedral=dihedral)]
    return {"signals": result.signals, "quality": result.quality, "matches": found}, found


def _ready(service: Service) -> None:
    """503 until this worker's index is loaded: an empty index would answer "no match" wrongly."""
    if not service.follower.loaded:
        raise HTTPException(503, "the index is still loading; retry shortly (GET /readyz says when)")


def _committed(service: Service, principal: Principal, found: list[dict[str, Any]], items: int) -> Any:
    """Queue the match log rows, then the audit row; the future is done once both are committed (no
    answer leaves unaudited). Shared with other requests of the batch: shield it to await it."""
    at = now()
    if found:
        service.records.matched(principal, found, at)
        service.metrics.count("matches", len(found))
    return service.records.committed(principal, "match", detail={"items": items, "matches": len(found)}, at=at)


async def _record(service: Service, principal: Principal, found: list[dict[str, Any]], items: int) -> None:
    await asyncio.shield(_committed(service, principal, found, items))


def _threshold(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HTTPException(400, f"threshold must be a whole number >= 0, got {value!r}")
    return value


@router.post("/hash", dependencies=[require("hash")], openapi_extra=UPLOAD_DOC)
async def hash_file(
    request: Request,
    service: ServiceDep,
    signals: Annotated[str | None, Query(description="Comma-separated signals (default: all).")] = None,
    dihedral: Annotated[bool, Query(description="Also the 8 rotated/flipped PDQ hashes.")] = False,
) -> Response:
    """Fingerprint an uploaded file (PDQ with quality, MD5, SHA-1, SHA-256). Nothing is kept."""
    result = await hash_upload(request, service, signals, dihedral)
    return json_response({k: v for k, v in result.to_json().items() if k != "path"})


@router.post("/match/file", openapi_extra=UPLOAD_DOC)
async def match_file(
    request: Request,
    service: ServiceDep,
    principal: Annotated[Principal, require("match")],
    banks: Annotated[list[str] | None, Query(description="Only these banks (default: all the key may use).")] = None,
    threshold: Annotated[int | None, Query(ge=0, description="PDQ distance override.")] = None,
    dihedral: Annotated[bool, Query(description="Also match rotated/flipped copies.")] = False,
) -> Response:
    """Hash an uploaded file and match it against the banks. Only fingerprints are logged."""
    chosen = scoped_banks(principal, banks)
    _ready(service)
    result = await hash_upload(request, service, None, dihedral)
    answer, found = file_answer(service, result, chosen, threshold, dihedral)
    await _record(service, principal, found, 1)
    return json_response(answer)


@router.post("/match", openapi_extra=BATCH_DOC)
async def match_fingerprints(
    request: Request, service: ServiceDep, principal: Annotated[Principal, require("match")]
) -> Response:
    """Match up to 1,000 items of fingerprints in one call. A bad item gets its own error; the rest go on."""
    _ready(service)
    answer, found = match_batch(service, principal, await request.body())
    await _record(service, principal, found, len(answer["results"]))
    return json_response(answer)


def match_batch(service: Service, principal: Principal, body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``POST /v1/match`` after the role check and readiness: the answer and the matches in it to log,
    or an HTTPException saying why not. Shared by the FastAPI route and the lane (``MatchLane``)."""
    try:
        payload = json.loads(body.decode())  # (bytes would be sniffed for UTF-16 and -32 first)
    except ValueError as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from None
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise HTTPException(400, 'body must be {"items": [{"pdq": "<hex>", ...}, ...]} with at least one item')
    if len(items) > service.config.max_batch:
        raise HTTPException(413, f"{len(items)} items is over the batch limit of {service.config.max_batch}")
    requested = payload.get("banks")
    if requested is not None and not (isinstance(requested, list) and all(isinstance(b, str) for b in requested)):
        raise HTTPException(400, "banks must be a list of bank names")
    chosen = scoped_banks(principal, requested)
    threshold = _threshold(payload.get("threshold"))
    results: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    match_values = service.matcher.match_values
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not item or not all(isinstance(v, str) for v in item.values()):
            results.append({"error": f"item {position}: must be an object of signal name to hex value"})
            continue
        try:
            matches = [match_json(m) for m in match_values(item, banks=chosen, threshold=threshold)]
        except (ValueError, KeyError) as exc:
            results.append({"error": f"item {position}: {exc}"})
            continue
        results.append({"matches": matches})
        found += matches
    return {"results": results}, found


class _Lane:
    """What the matching lanes share: the requests they take, and answering after the audit commit.

    A lane (``service/lane.py``) serves its route straight from the parsed HTTP request, without an
    ASGI task, scope or middleware: on the path every upload takes, those cost more than the lookup.
    It takes only requests whose key was verified recently, whose role may match and whose size is
    within the limit; any other goes the ordinary way (Guard, route), which verifies or refuses it.
    Past that, the route's own checks, in the same order with the same answers: rate limit, bank
    scopes, readiness, the route's limits, and the audit row committed before the answer."""

    method: bytes = b"POST"
    path: bytes

    def __init__(self, service: Service, admission: Admission) -> None:
        self.service, self.admission = service, admission
        #: The route's template in the request metrics, as the Guard counts it (these have no parameters).
        self.route = self.path.decode()
        #: Requests answered here (the rest of the app never sees them); read by the tests.
        self.handled = 0

    def admit(self, headers: list[tuple[bytes, bytes]]) -> tuple[Principal, int | None] | None:
        """(caller, declared length) if the lane takes the request."""
        key, length = key_and_length(headers)
        if length is not None and length > self.admission.max_body:
            return None  # the Guard refuses it before reading it
        principal = self.admission.known(key)
        return (principal, length) if principal is not None and principal.can("match") else None

    def handle(self, ticket: tuple[Principal, int | None], headers: list[tuple[bytes, bytes]], body: bytes,
               respond: Respond) -> None:
        """Answer through ``respond(status, body, headers)``: now for a refusal, else once the audit
        row is committed."""
        self.handled += 1
        principal, length = ticket
        try:
            refusal = self.admission.limits(principal, length)
            if refusal:
                status, detail, *extra = refusal
                respond(status, refusal_body(detail), *extra)
                return
            self.serve(principal, headers, body, respond)
        except HTTPException as exc:
            respond(exc.status_code, refusal_body(exc.detail))

    def serve(self, principal: Principal, headers: list[tuple[bytes, bytes]], body: bytes, respond: Respond) -> None:
        raise NotImplementedError

    def answered(self, status: int, seconds: float) -> None:
        self.service.metrics.observe(self.route, "POST", status, seconds)

    def answer(self, principal: Principal, answer: dict[str, Any], found: list[dict[str, Any]], items: int,
               respond: Respond) -> None:
        encoded = _encoded(answer, found)
        committed = _committed(self.service, principal, found, items)
        committed.add_done_callback(lambda done: respond(*_after_audit(done, encoded)))


class MatchLane(_Lane):
    """``POST /v1/match`` (the ``match_fingerprints`` route) as a lane."""

    path = b"/v1/match"

    def serve(self, principal: Principal, headers: list[tuple[bytes, bytes]], body: bytes, respond: Respond) -> None:
        _ready(self.service)
        answer, found = match_batch(self.service, principal, body)
        self.answer(principal, answer, found, len(answer["results"]), respond)


class MatchFileLane(_Lane):
    """``POST /v1/match/file`` without a query string (the ``match_file`` route's defaults) as a lane:
    the upload is hashed on the service's hashing threads, then matched on the event loop."""

    path = b"/v1/match/file"

    def serve(self, principal: Principal, headers: list[tuple[bytes, bytes]], body: bytes, respond: Respond) -> None:
        chosen = scoped_banks(principal, None)
        _ready(self.service)
        content_type = next((v.decode("latin-1") for n, v in headers if n == b"content-type"), "")
        data = upload_of(body, content_type, self.service.config)
        self.service.hash_soon(data).add_done_callback(
            lambda done: self._hashed(done, principal, chosen, respond)
        )

    def _hashed(self, done: Any, principal: Principal, chosen: list[str] | None, respond: Respond) -> None:
        try:
            answer, found = file_answer(self.service, hashed(done.result()), chosen, None, False)
        except HTTPException as exc:
            respond(exc.status_code, refusal_body(exc.detail))
            return
        except (Exception, asyncio.CancelledError):  # cancelled: the server is stopping
            log.exception("matching an upload failed")
            respond(500, refusal_body("internal error"), [(b"connection", b"close")])
            return
        self.answer(principal, answer, found, 1, respond)


_NOTHING_FOUND = b'{"matches":[]}'


def _encoded(answer: dict[str, Any], found: list[dict[str, Any]]) -> bytes:
    """The answer as JSON; most lookups find nothing, and that answer is known in advance."""
    results = answer.get("results")
    if not found and results is not None and all(r == {"matches": []} for r in results):
        return b'{"results":[' + b",".join([_NOTHING_FOUND] * len(results)) + b"]}"
    return json.dumps(answer, separators=(",", ":")).encode()


def _after_audit(done: Any, answer: bytes) -> tuple[int, bytes]:
    error = done.exception()
    return (200, answer) if error is None else (503, refusal_body(str(error)))
