"""Admin REST API: purposes, roles, cameras, rules and users (policy administrators), and the raw-view
dual-control workflow (investigators request, approvers approve or deny, admins/approvers revoke).
Every change is logged as `policy.change` with before/after; camera responses never carry source URLs
or credentials. Mounted by the app as `router`; reads `request.app.state.policies` (a PolicyContext)."""

# No `from __future__ import annotations`: the CRUD routes are built in a loop and FastAPI must see
# each route's body class itself, not a string naming a loop variable.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from policies import files
from policies.auth import require
from policies.context import PolicyContext
from policies.contract import Principal
from policies.credentials import redact_url
from policies.duties import check_role_change
from policies.models import Camera, Rule, User, utcnow
from policies.role_grants import pending_roles
from policies.schemas import (
    CameraIn,
    CameraOut,
    PurposeIn,
    PurposeOut,
    RawApproveIn,
    RawRequestIn,
    RawRequestOut,
    ReasonIn,
    RoleIn,
    RoleOut,
    RuleIn,
    RuleOut,
    UserIn,
    UserOut,
    UserPatch,
    problems,
)
from policies.user_admin import save_user, user_out

router = APIRouter(prefix="/api", responses=problems(401, 403))
Admin = Annotated[Principal, Depends(require("admin"))]
Anyone = Annotated[Principal, Depends(require())]


def _ctx(request: Request) -> PolicyContext:
    return request.app.state.policies  # type: ignore[no-any-return]


# -- records -----------------------------------------------------------------------------------------


def camera_out(cam: Camera) -> CameraOut:
    data = files.record_dict("cameras", cam, secrets=True)
    url = data.pop("source_url") or ""
    user, password = data.pop("source_username"), data.pop("source_password")
    return CameraOut(
        **data, has_source=bool(url), has_credentials=bool(user or password or redact_url(url) != url)
    )


def _out(section: str, obj: Any) -> BaseModel:
    if section == "cameras":
        return camera_out(obj)
    if section == "users":
        return user_out(obj)
    out = {"purposes": PurposeOut, "roles": RoleOut, "rules": RuleOut}[section]
    return out.model_validate(files.record_dict(section, obj))


def _get(s: Any, section: str, ident: str) -> Any:
    if section == "users":
        return s.scalar(select(User).where(User.username == ident))
    return s.get(files.MODELS[section], ident)


def _save(request: Request, who: Principal, section: str, item: BaseModel, create: bool) -> BaseModel:
    """Create or replace one record: checked against the database, then committed with its log entry."""
    ctx = _ctx(request)
    key = getattr(item, files.KEYS[section])
    with ctx.db.session() as s:
        exists = _get(s, section, key) is not None
        if create and exists:
            raise HTTPException(409, detail=f"{files.KIND[section]} {key!r} exists")
        if not create and not exists:
            raise HTTPException(404, detail=f"unknown {files.KIND[section]} {key!r}")
        loaded = files.LoadedPolicy(files.PolicyDocument(**{section: [item]}))
        files.check_references(loaded, s)
        if section == "roles":  # widening a held role's rights is a grant; duties must stay apart
            st = ctx.settings
            check_role_change(s, key, item.model_dump(), allow_conflicts=st.allow_conflicting_duties,
                              second_admin=st.grants_need_second_admin)
        change = files.upsert(
            s, section, item, hasher=ctx.auth.hash_password, only_set=section == "users", env=False
        )
        out = _out(section, _get(s, section, key))
        if change is not None:
            files.log_changes(ctx.audit, who.username, who.roles, [change], source="api", session=s)
    return out


def _referenced(s: Any, section: str, ident: str) -> str | None:
    """Why a purpose or role cannot go: what still refers to it."""
    if section == "purposes":
        users = [c.id for c in s.scalars(select(Camera)) if ident in c.purposes]
        users += [r.id for r in s.scalars(select(Rule)) if ident in r.purposes]
    elif section == "roles":
        users = [r.id for r in s.scalars(select(Rule)) if ident in r.roles]
    else:
        return None
    return f"still used by {', '.join(sorted(users))}" if users else None


def _delete(request: Request, who: Principal, section: str, ident: str) -> None:
    ctx = _ctx(request)
    kind = files.KIND[section]
    try:
        with ctx.db.session() as s:
            if _get(s, section, ident) is None:
                raise HTTPException(404, detail=f"unknown {kind} {ident!r}")
            if why := _referenced(s, section, ident):
                raise HTTPException(409, detail=f"{kind} {ident!r} {why}")
            change = files.delete(s, section, ident)
            if change is not None:
                files.log_changes(ctx.audit, who.username, who.roles, [change], source="api", session=s)
    except IntegrityError:
        # View sessions and raw-view requests refer to it: history stays, so disable instead.
        raise HTTPException(409, detail=f"{kind} {ident!r} has access history; disable it instead") from None


def _crud(section: str, path: str, body_in: type[BaseModel], body_out: type[BaseModel], tag: str) -> None:
    kind = files.KIND[section]
    model = files.MODELS[section]
    order = getattr(model, files.KEYS[section])

    def list_all(request: Request, who: Admin) -> list[Any]:
        with _ctx(request).db.session() as s:
            return [_out(section, o) for o in s.scalars(select(model).order_by(order))]

    def get_one(ident: str, request: Request, who: Admin) -> Any:
        with _ctx(request).db.session() as s:
            obj = _get(s, section, ident)
            if obj is None:
                raise HTTPException(404, detail=f"unknown {kind} {ident!r}")
            return _out(section, obj)

    def create(body: body_in, request: Request, who: Admin, response: Response) -> Any:  # type: ignore[valid-type]
        response.status_code = 201
        return _save(request, who, section, body, create=True)

    def replace(ident: str, body: body_in, request: Request, who: Admin) -> Any:  # type: ignore[valid-type]
        if getattr(body, files.KEYS[section]) != ident:
            raise HTTPException(400, detail=f"{files.KEYS[section]}: must match the path ({ident!r})")
        return _save(request, who, section, body, create=False)

    def remove(ident: str, request: Request, who: Admin) -> Response:
        _delete(request, who, section, ident)
        return Response(status_code=204)

    router.add_api_route(
        path, list_all, methods=["GET"], response_model=list[body_out], tags=[tag], summary=f"List {section}"
    )
    router.add_api_route(
        path + "/{ident}",
        get_one,
        methods=["GET"],
        response_model=body_out,
        tags=[tag],
        summary=f"Get a {kind}",
        responses=problems(404),
    )
    router.add_api_route(
        path,
        create,
        methods=["POST"],
        response_model=body_out,
        status_code=201,
        tags=[tag],
        summary=f"Create a {kind}",
        responses=problems(400, 409),
    )
    router.add_api_route(
        path + "/{ident}",
        replace,
        methods=["PUT"],
        response_model=body_out,
        tags=[tag],
        summary=f"Replace a {kind}",
        responses=problems(400, 404),
    )
    router.add_api_route(
        path + "/{ident}",
        remove,
        methods=["DELETE"],
        status_code=204,
        tags=[tag],
        summary=f"Delete a {kind}",
        responses=problems(404, 409),
    )


_crud("purposes", "/purposes", PurposeIn, PurposeOut, "policy")
_crud("roles", "/roles", RoleIn, RoleOut, "policy")
_crud("cameras", "/cameras", CameraIn, CameraOut, "cameras")
_crud("rules", "/rules", RuleIn, RuleOut, "policy")


# Users: created with UserIn, changed with a partial UserPatch (password, roles, active).
@router.get("/users", response_model=list[UserOut], tags=["users"], summary="List users")
def list_users(request: Request, who: Admin) -> list[UserOut]:
    with _ctx(request).db.session() as s:
        pending = pending_roles(s, utcnow())
        return [user_out(u, pending.get(u.uid, ())) for u in s.scalars(select(User).order_by(User.username))]


@router.get("/users/{username}", response_model=UserOut, tags=["users"], summary="Get a user",
            responses=problems(404))
def get_user(username: str, request: Request, who: Admin) -> UserOut:
    with _ctx(request).db.session() as s:
        user = _get(s, "users", username)
        if user is None:
            raise HTTPException(404, detail=f"unknown user {username!r}")
        return user_out(user, pending_roles(s, utcnow()).get(user.uid, ()))


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"], summary="Create a user",
             responses=problems(400, 409))
def create_user(body: UserIn, request: Request, who: Admin) -> Any:
    # Roles conferring watching, raw-view or admin rights wait for a second admin (pending_roles).
    try:
        return save_user(_ctx(request), who, body, create=True)
    except IntegrityError:  # a unique column other than the name: the single sign-on subject
        raise HTTPException(409, detail="another user has that single sign-on subject") from None


@router.patch(
    "/users/{username}",
    response_model=UserOut,
    tags=["users"],
    summary="Change a user's display name, roles, password or active flag",
    responses=problems(400, 404, 409),
)
def patch_user(username: str, body: UserPatch, request: Request, who: Admin, response: Response) -> Any:
    fields = body.model_dump(exclude_unset=True)
    item = UserIn.model_construct(username=username, **fields, _fields_set={"username", *fields})
    try:
        out = save_user(_ctx(request), who, item, create=False)
    except IntegrityError:
        raise HTTPException(409, detail="another user has that single sign-on subject") from None
    if out.pending_roles:
        response.status_code = 202  # the rest applied; those roles wait for a second admin
    return out


@router.delete("/users/{username}", status_code=204, tags=["users"], summary="Delete a user",
               responses=problems(404, 409))
def delete_user(username: str, request: Request, who: Admin) -> Response:
    _delete(request, who, "users", username)
    return Response(status_code=204)


# -- viewing and raw-view dual control ---------------------------------------------------------------


@router.get(
    "/view/cameras", tags=["viewing"], summary="Cameras the caller may watch now, and for which purposes"
)
def viewable_cameras(request: Request, who: Anyone) -> list[dict[str, Any]]:
    return _ctx(request).service.cameras_for(who)


@router.post(
    "/raw-requests",
    response_model=RawRequestOut,
    status_code=201,
    tags=["raw view"],
    summary="Request raw (unmasked) view for a case; needs a second person's approval",
    responses=problems(400, 404, 409),
)
def create_raw_request(
    body: RawRequestIn, request: Request, who: Annotated[Principal, Depends(require("request_raw"))]
) -> Any:
    return _ctx(request).service.request_raw(
        who, body.camera_id, body.purpose, body.case_ref, body.justification
    )


@router.get(
    "/raw-requests",
    response_model=list[RawRequestOut],
    tags=["raw view"],
    summary="Raw-view requests: all for approvers, admins and auditors; one's own otherwise",
)
def list_raw_requests(
    request: Request, who: Anyone, status: Annotated[str | None, Query(max_length=16)] = None
) -> Any:
    return _ctx(request).service.list_raw(who, status)


@router.get(
    "/raw-requests/{request_id}", response_model=RawRequestOut, tags=["raw view"], responses=problems(404)
)
def get_raw_request(request_id: str, request: Request, who: Anyone) -> Any:
    return _ctx(request).service.get_raw(who, request_id)


@router.post(
    "/raw-requests/{request_id}/approve",
    response_model=RawRequestOut,
    tags=["raw view"],
    summary="Approve someone else's pending request for a limited time",
    responses=problems(400, 404, 409),
)
def approve_raw_request(
    request_id: str,
    request: Request,
    who: Annotated[Principal, Depends(require("approve_raw"))],
    body: Annotated[RawApproveIn | None, Body()] = None,
) -> Any:
    return _ctx(request).service.approve_raw(who, request_id, body.minutes if body else None)


@router.post(
    "/raw-requests/{request_id}/deny",
    response_model=RawRequestOut,
    tags=["raw view"],
    responses=problems(400, 404, 409),
)
def deny_raw_request(
    request_id: str,
    body: ReasonIn,
    request: Request,
    who: Annotated[Principal, Depends(require("approve_raw"))],
) -> Any:
    return _ctx(request).service.deny_raw(who, request_id, body.reason)


@router.post(
    "/raw-requests/{request_id}/revoke",
    response_model=RawRequestOut,
    tags=["raw view"],
    summary="Revoke a pending or approved request; running raw views stop within a second",
    responses=problems(400, 404, 409),
)
def revoke_raw_request(request_id: str, body: ReasonIn, request: Request, who: Anyone) -> Any:
    return _ctx(request).service.revoke_raw(who, request_id, body.reason)
