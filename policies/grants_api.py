"""`/api/role-grants`: grants waiting for a second admin (policies.role_grants), listed, approved and denied
by admins; mounted by the app beside the admin API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from policies.auth import require
from policies.contract import Principal
from policies.role_grants import RoleGrants
from policies.schemas import IDENT_MAX, ReasonIn, problems

router = APIRouter(prefix="/api/role-grants", tags=["users"], responses=problems(401, 403))
Admin = Annotated[Principal, Depends(require("admin"))]


def _grants(request: Request) -> RoleGrants:
    ctx = request.app.state.policies
    return RoleGrants(ctx.db, ctx.audit, ctx.settings)


@router.get("", summary="Role grants: pending ones wait for a second admin", responses=problems(400))
def list_grants(request: Request, who: Admin,
                state: Annotated[str | None, Query(max_length=IDENT_MAX)] = None) -> list[dict[str, Any]]:
    return _grants(request).list(state)


@router.post("/{grant_id}/approve", summary="Approve another admin's grant (not one to yourself)",
             responses=problems(403, 404, 409))
def approve_grant(grant_id: str, request: Request, who: Admin) -> dict[str, Any]:
    return _grants(request).approve(who, grant_id)


@router.post("/{grant_id}/deny", summary="Deny another admin's grant", responses=problems(403, 404, 409))
def deny_grant(grant_id: str, body: ReasonIn, request: Request, who: Admin) -> dict[str, Any]:
    return _grants(request).deny(who, grant_id, body.reason)
