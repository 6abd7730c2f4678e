"""Every route needs a key (401), the right role (403) and bank (403); keys are never kept in clear."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from hashbank.service.auth import permission_of
from hashbank.service.guard import PUBLIC
from hashbank.service.keys import ROLES
from hashbank.service.tables import api_keys
from tests.service.conftest import Api


def flatten(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers (FastAPI keeps them as lazy wrappers)."""
    out = []
    for route in routes:
        if hasattr(route, "original_router"):
            out += flatten(route.original_router.routes)
        else:
            assert isinstance(route, APIRoute), f"unexpected route type {type(route).__name__}"
            out.append(route)
    return out


def routes(api: Api) -> list[tuple[str, str, APIRoute]]:
    """(method, concrete path, route) for every route of the app, path parameters filled in."""
    out = []
    found = flatten(api.client.app.routes)
    schema = api.client.app.openapi()["paths"]
    assert set(schema) <= {r.path for r in found}, "routes missing from the enumeration"
    for route in found:
        path = re.sub(r"\{bank\}", "somebank", route.path)
        path = re.sub(r"\{[a-z_]+\}", "1", path)
        out += [(method, path, route) for method in sorted(route.methods - {"HEAD"})]
    return out


def permission(route: APIRoute) -> str | None:
    found = {permission_of(dep.call) for dep in route.dependant.dependencies} - {None}
    return found.pop() if found else None


def test_every_route_but_health_needs_a_key(api: Api) -> None:
    seen = 0
    for method, path, route in routes(api):
        if route.path in PUBLIC:
            assert api.client.request(method, path).status_code == 200, path
            continue
        seen += 1
        for headers in ({}, {"Authorization": "Bearer hb_nosuchkey_secret"}, {"X-API-Key": "junk"}):
            response = api.client.request(method, path, headers=headers, content=b"{}")
            assert response.status_code == 401, f"{method} {path} without a valid key gave {response.status_code}"
            assert response.json()["detail"]
    assert seen >= 20
    assert api.client.get("/v1/no/such/route").status_code == 401


def test_every_protected_route_refuses_other_roles(api: Api) -> None:
    for method, path, route in routes(api):
        if route.path in PUBLIC:
            continue
        needed = permission(route)
        assert needed, f"{method} {route.path} declares no permission (use auth.require)"
        refused = [role for role, allowed in ROLES.items() if needed not in allowed]
        assert refused or needed == "docs", f"{route.path}: every role may {needed}"
        for role in refused:
            response = api.client.request(method, path, headers=api.auth(role), content=b"{}")
            assert response.status_code == 403, f"{role} on {method} {path} gave {response.status_code}"


def test_bank_scoped_key_cannot_touch_other_banks(api: Api) -> None:
    api.client.post("/v1/banks", headers=api.auth("admin"), json={"name": "mine"})
    api.client.post("/v1/banks", headers=api.auth("admin"), json={"name": "theirs"})
    ring = api.client.app.state.service.keys
    scoped = {"Authorization": f"Bearer {ring.create('admin', ['mine'])[1]}"}
    bank_routes = [(m, p.replace("somebank", "theirs"), r) for m, p, r in routes(api) if "{bank}" in r.path]
    assert len(bank_routes) >= 10
    for method, path, _ in bank_routes:
        response = api.client.request(method, path, headers=scoped, content=b"{}")
        assert response.status_code == 403, f"{method} {path} for another bank gave {response.status_code}"
    assert api.client.get("/v1/banks/mine", headers=scoped).status_code == 200
    names = [b["name"] for b in api.client.get("/v1/banks", headers=scoped).json()["banks"]]
    assert names == ["mine"]
    refused = api.client.post("/v1/match", headers=scoped, json={"items": [{"md5": "0" * 32}], "banks": ["theirs"]})
    assert refused.status_code == 403
    assert api.client.get("/v1/changes?bank=theirs", headers=scoped).status_code == 403


def test_keys_are_stored_hashed_and_revocable(api: Api) -> None:
    ring = api.client.app.state.service.keys
    key_id, key = ring.create("matcher", name="revoke me")
    secret = key.split("_")[2]
    with api.store.engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(select(api_keys))]
    assert rows and not any(secret in field or key in field for row in rows for field in row)
    assert all("secret_hash" not in row for row in ring.list())

    def status(presented: str) -> int:
        body = {"items": [{"md5": "0" * 32}]}
        return api.client.post("/v1/match", headers={"X-API-Key": presented}, json=body).status_code

    assert status(key) == 200
    assert status(key[:-2] + ("AA" if not key.endswith("AA") else "BB")) == 401
    assert ring.revoke(key_id)
    assert status(key) == 401


def test_basic_auth_carries_the_key_for_browsers(api: Api) -> None:
    challenge = api.client.get("/docs")
    assert challenge.status_code == 401 and "Basic" in challenge.headers["www-authenticate"]
    assert api.client.get("/docs", auth=("any", api.keys["matcher"])).status_code == 200
    schema = api.client.get("/openapi.json", auth=("any", api.keys["matcher"])).json()
    assert "/v1/match" in schema["paths"]


def test_rate_limit_refuses_with_a_reason(api: Api) -> None:
    ring = api.client.app.state.service.keys
    headers = {"X-API-Key": ring.create("matcher", rate_limit=1.0)[1]}
    statuses = [api.client.post("/v1/match", headers=headers, json={"items": [{"md5": "0" * 32}]}) for _ in range(5)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and "rate limit" in limited[0].json()["detail"] and limited[0].headers["retry-after"]
    assert statuses[0].status_code == 200


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_reaches_what_it_may(api: Api, role: str) -> None:
    allowed = ROLES[role]
    match = api.client.post("/v1/match", headers=api.auth(role), json={"items": [{"md5": "0" * 32}]})
    assert match.status_code == (200 if "match" in allowed else 403)
    audit = api.client.get("/v1/audit", headers=api.auth(role))
    assert audit.status_code == (200 if "audit.read" in allowed else 403)
