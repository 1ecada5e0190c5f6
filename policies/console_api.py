"""`/api/console`: what the administrator and auditor consoles need beyond the admin and audit APIs.

- `GET /cameras/{id}/preview` (admins): who may watch this camera, for which purposes, in which mode,
  when: the rules that select it, narrowed to the purposes it is approved for, with the people holding
  their roles.
- `GET /policy` (admins): the policy file as YAML, credentials redacted (as `cctv-relay policy export`).
- `POST /policy/check`, `POST /policy/import` (admins): a policy file's text checked with the policy-file
  checker's messages (`file:line: field: problem`), then imported in one transaction, each change logged.
  Users are refused here: role grants made from the page go through the Users page and a second admin.
- `GET /access-review` (auditors): who holds which roles and rights, whose duties conflict, who has not
  signed in for `inactive_days` (90). Logged as `audit.access` like every auditor query."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import Field
from sqlalchemy import func, select

from policies import files
from policies.audit.api import log_access
from policies.auth import require
from policies.contract import PolicyError, Principal
from policies.duties import check_role_change, conflict, rights_of
from policies.facts import camera_facts, rule_facts
from policies.models import AuditEntry, Camera, Purpose, Role, Rule, User
from policies.schemas import IDENT_MAX, _Strict, problems

router = APIRouter(prefix="/api/console", tags=["consoles"], responses=problems(401, 403))
Admin = Annotated[Principal, Depends(require("admin"))]
Auditor = Annotated[Principal, Depends(require("audit"))]
# Characters of one uploaded policy file: even written as JSON escapes (6 bytes each) it stays under the
# 1 MiB body limit, so an oversized text is answered 422, not cut off. Larger policies: the command line.
POLICY_TEXT_MAX = 160 * 1024
UPLOAD_NAME = "uploaded.yaml"  # what the checker's messages call the uploaded file


def _ctx(request: Request) -> Any:
    return request.app.state.policies


# -- who may watch this camera ----------------------------------------------------------------------


@router.get("/cameras/{camera_id}/preview", summary="Who may watch this camera, for which purposes, "
            "in which mode, when", responses=problems(404))
def preview(camera_id: Annotated[str, Path(max_length=IDENT_MAX)], request: Request,
            who: Admin) -> dict[str, Any]:
    with _ctx(request).db.session() as s:
        cam = s.get(Camera, camera_id)
        if cam is None:
            raise HTTPException(404, detail=f"unknown camera {camera_id!r}")
        facts = camera_facts(cam)
        raw_ok = {p.id for p in s.scalars(select(Purpose).where(Purpose.allows_raw.is_(True)))}
        roles = {r.name: r for r in s.scalars(select(Role))}
        holders: dict[str, list[str]] = {}
        for user in s.scalars(select(User).where(User.active.is_(True)).order_by(User.username)):
            for role in user.roles:
                holders.setdefault(role.name, []).append(user.username)
        grants = []
        for rule in s.scalars(select(Rule).order_by(Rule.id)):
            rf = rule_facts(rule)
            if not rf.matches_camera(facts):
                continue
            modes = sorted(rf.modes)
            purposes = sorted(rf.purposes & facts.purposes)
            grants.append({
                "rule_id": rf.id, "enabled": rf.enabled, "description": rule.description,
                "roles": [{"name": name, "can_view": bool(roles[name].can_view) if name in roles else False,
                           "users": holders.get(name, [])} for name in sorted(rf.roles)],
                "purposes": purposes,
                # A rule never widens the camera's approval: these stay closed on this camera.
                "not_approved_here": sorted(rf.purposes - facts.purposes),
                "modes": modes,
                # Raw view also needs an approved raw-view request for a case, per person and camera.
                "raw_purposes": sorted(p for p in purposes if p in raw_ok) if "raw" in modes else [],
                "when": [w.describe() for w in rf.time_windows],  # empty: always
                "max_session_s": rf.max_session_s,
            })
        return {"camera": {"id": cam.id, "name": cam.name, "enabled": cam.enabled,
                           "purposes": sorted(facts.purposes)},
                "rules": grants}


# -- the policy file ----------------------------------------------------------------------------------


class PolicyText(_Strict):
    yaml: str = Field(max_length=POLICY_TEXT_MAX, description="a policy file's text (YAML)")


def _checked(ctx: Any, body: PolicyText, s: Any) -> files.LoadedPolicy:
    loaded = files.load_text(body.yaml, UPLOAD_NAME)
    if loaded.document.users:
        raise files.PolicyFileError([f"{UPLOAD_NAME}:1: users: not imported from the page; create users and "
                                     "grant roles on the Users page (grants wait for a second administrator) "
                                     "or with `cctv-relay policy import`"])
    files.check_references(loaded, s)
    st = ctx.settings
    for role in loaded.document.roles:
        try:  # widening a held role's rights is a grant; duties must stay apart
            check_role_change(s, role.name, role.model_dump(), allow_conflicts=st.allow_conflicting_duties,
                              second_admin=st.grants_need_second_admin)
        except PolicyError as exc:
            raise files.PolicyFileError([f"{UPLOAD_NAME}:1: roles: {exc}"]) from None
    return loaded


def _summary(loaded: files.LoadedPolicy) -> dict[str, int]:
    return {section: len(getattr(loaded.document, section)) for section in files.SECTIONS}


@router.get("/policy", summary="The policy as a YAML file (credentials redacted)",
            response_class=Response, responses={200: {"content": {"application/yaml": {}}}})
def export_policy(request: Request, who: Admin) -> Response:
    text = files.export(_ctx(request).db)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(text, media_type="application/yaml; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="policy-{stamp}.yaml"'})


@router.post("/policy/check", summary="Check a policy file against the policy in force (nothing changes)")
def check_policy(body: PolicyText, request: Request, who: Admin) -> dict[str, Any]:
    ctx = _ctx(request)
    try:
        with ctx.db.session() as s:
            loaded = _checked(ctx, body, s)
            s.rollback()
    except files.PolicyFileError as exc:
        return {"ok": False, "problems": exc.problems}
    return {"ok": True, "problems": [], "counts": _summary(loaded)}


@router.post("/policy/import", summary="Import a policy file: every record or none, each change logged",
             responses=problems(400, 409))
def import_policy(body: PolicyText, request: Request, who: Admin) -> dict[str, Any]:
    ctx = _ctx(request)
    with ctx.db.session() as s:
        loaded = _checked(ctx, body, s)
        changes = []
        for section in files.SECTIONS:  # purposes and roles first: the others refer to them
            for item in getattr(loaded.document, section):
                change = files.upsert(s, section, item, only_set=True, env=False)
                if change is not None:
                    changes.append(change)
        files.log_changes(ctx.audit, who.username, who.roles, changes, source="console import", session=s)
    return {"counts": _summary(loaded),
            "changes": [{"kind": c.kind, "id": c.id, "action": c.action} for c in changes]}


# -- the periodic access review -----------------------------------------------------------------------


@router.get("/access-review", summary="Who holds which roles; who has not signed in for a while")
def access_review(request: Request, who: Auditor,
                  inactive_days: Annotated[int, Query(ge=1, le=3650)] = 90) -> dict[str, Any]:
    ctx = _ctx(request)
    log_access(request, who, "access review", {"inactive_days": inactive_days})
    now = dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=inactive_days)
    with ctx.db.session() as s:
        last = dict(s.execute(select(AuditEntry.actor, func.max(AuditEntry.ts))
                              .where(AuditEntry.kind == "auth.login", AuditEntry.decision == "allow")
                              .group_by(AuditEntry.actor)).all())
        people = []
        for user in s.scalars(select(User).order_by(User.username)):
            signed_in = _aware(last.get(user.username))
            created = _aware(user.created_at) or now
            since = signed_in or created
            people.append({
                "username": user.username, "display_name": user.display_name, "active": user.active,
                "roles": sorted(r.name for r in user.roles),
                "rights": sorted(rights_of(user.roles)),
                "conflict": conflict(user.roles),
                "created_at": created.isoformat(),
                "last_sign_in": signed_in.isoformat() if signed_in else None,
                # An account nobody has used for the period: disable it or ask why it is kept.
                "inactive": user.active and since < cutoff,
            })
    return {"generated_at": now.isoformat(), "inactive_days": inactive_days, "users": people}


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
