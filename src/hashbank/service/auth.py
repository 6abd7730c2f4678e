"""Per-route authorisation: ``require("permission")`` checks the caller's role and bank scope."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, HTTPException, Request
from starlette.types import Scope

from hashbank.service.keys import Principal


def require(permission: str) -> Any:
    """A dependency giving the caller's Principal, or 403 when its role lacks ``permission`` or the
    path's ``{bank}`` is outside its scope. (401 for no key is the Guard's job, before routing.)"""

    async def check(request: Request) -> Principal:  # async: no threadpool hop (see app.service_of)
        principal = permitted(request.scope, permission)
        bank = request.path_params.get("bank")
        if bank is not None:
            check_bank(principal, bank)
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the route-protection test
    return Depends(check)


def permitted(scope: Scope, permission: str) -> Principal:
    """The Principal the Guard admitted, or 401/403 when there is none or its role lacks ``permission``."""
    principal: Principal | None = scope.get("state", {}).get("principal")
    if principal is None:
        raise HTTPException(401, "an API key is required")
    if not principal.can(permission):
        raise HTTPException(403, f"role {principal.role!r} may not do {permission!r}")
    return principal


def check_bank(principal: Principal, bank: str) -> None:
    """403 unless the key may use this bank."""
    if not principal.may_use_bank(bank):
        raise HTTPException(403, f"this key is not allowed to use bank {bank!r}")


def scoped_banks(principal: Principal, requested: Iterable[str] | None) -> list[str] | None:
    """The banks a request may see: what it asked for (each checked) or, by default, the key's scope."""
    if requested:
        wanted = list(requested)
        for bank in wanted:
            check_bank(principal, bank)
        return wanted
    return sorted(principal.banks) if principal.banks is not None else None


def permission_of(dependency: Callable[..., Any]) -> str | None:
    return getattr(dependency, "permission", None)
