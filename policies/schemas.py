"""Pydantic models of the policy files and the admin API: what a purpose, role, camera, rule, user and
raw-view request look like on the wire. Shape checks live here; cross-references (a rule naming an
unknown role) are checked in policies.files against the whole policy."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from policies.credentials import CAMERA_ENV_NAME, ENV_REF
from policies.engine import DAY_NAMES, parse_hhmm

Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
ModeName = Literal["anonymized", "raw"]
# Display names per language (BCP 47 tags: "zh-TW", "en"); the dashboard and the public register show the
# one for the reader's language and fall back to `label` (purposes) or the id.
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Labels = dict[LanguageTag, Annotated[str, Field(min_length=1, max_length=200)]]
LABELS_HELP = "display names by language: {zh-TW: ..., en: ...}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PurposeIn(_Strict):
    id: Ident
    label: str = Field(min_length=1, max_length=200)
    labels: Labels = Field(default_factory=dict, description=LABELS_HELP)
    allows_raw: bool = False


class PurposeOut(PurposeIn):
    pass


class RoleIn(_Strict):
    name: Ident
    description: str = ""
    labels: Labels = Field(default_factory=dict, description=LABELS_HELP)
    can_view: bool = False
    can_request_raw: bool = False
    can_approve_raw: bool = False
    can_admin: bool = False
    can_audit: bool = False


class RoleOut(RoleIn):
    pass


Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class CameraBase(_Strict):
    id: Ident
    name: str = Field(min_length=1, max_length=200)
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    address: str = ""
    district: str = ""
    agency: str = ""
    purposes: list[Ident] = Field(default_factory=list, description="purposes this camera is approved for")
    tags: list[str] = Field(default_factory=list)
    signage: bool = True
    privacy_masks: list[list[Point]] = Field(
        default_factory=list, description="static masks: polygons in normalized [0, 1] image coordinates"
    )
    keepalive: bool = False
    enabled: bool = True

    @field_validator("privacy_masks")
    @classmethod
    def _polygons(cls, masks: list[list[Point]]) -> list[list[Point]]:
        for i, poly in enumerate(masks):
            if len(poly) < 3:
                raise ValueError(f"polygon {i} needs at least 3 points")
        return masks


class CameraIn(CameraBase):
    """A camera as configured. Credentials may be `${ENV_VAR}` references in policy files."""

    source_url: str = ""
    source_username: str | None = None
    source_password: str | None = None

    @field_validator("source_url", "source_username", "source_password")
    @classmethod
    def _camera_env_only(cls, v: str | None) -> str | None:
        for name in ENV_REF.findall(v or ""):
            if not CAMERA_ENV_NAME.match(name):
                raise ValueError(
                    f"${{{name}}}: camera credentials may only reference CAM_* or CAMERA_* variables"
                )
        return v


class CameraOut(CameraBase):
    """A camera as the admin API shows it: never the source URL or credentials."""

    has_credentials: bool = Field(description="a source URL with credentials or a username/password is set")
    has_source: bool = False


class TimeWindowIn(_Strict):
    days: list[int | str] = Field(
        default_factory=lambda: list(range(7)),
        description="days the window starts on: 0=Mon..6=Sun or Mon..Sun",
    )
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[int | str]) -> list[int]:
        out: list[int] = []
        for d in days:
            if isinstance(d, str):
                if d[:3].title() not in DAY_NAMES:
                    raise ValueError(f"unknown day {d!r} (Mon..Sun)")
                out.append(DAY_NAMES.index(d[:3].title()))
            elif 0 <= d <= 6:
                out.append(d)
            else:
                raise ValueError(f"day {d} is not 0 (Mon) .. 6 (Sun)")
        return sorted(set(out))

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str, info: ValidationInfo) -> str:
        t = parse_hhmm(v)  # raises ValueError with the reason
        if t is None and info.field_name == "start":
            raise ValueError("start cannot be 24:00")
        return v


class RuleIn(_Strict):
    id: Ident
    description: str = ""
    roles: list[Ident] = Field(min_length=1)
    camera_ids: list[str] = Field(default_factory=list, description='camera ids; ["*"] = every camera')
    districts: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    purposes: list[Ident] = Field(min_length=1)
    modes: list[ModeName] = Field(default_factory=lambda: ["anonymized"], min_length=1)
    time_windows: list[TimeWindowIn] = Field(default_factory=list, description="local time; empty = always")
    max_session_s: int = Field(default=8 * 3600, gt=0, le=24 * 3600)
    enabled: bool = True

    @model_validator(mode="after")
    def _selects_cameras(self) -> RuleIn:
        if not (self.camera_ids or self.districts or self.tags):
            raise ValueError("a rule must select cameras by camera_ids, districts or tags")
        return self


class RuleOut(RuleIn):
    pass


class UserIn(_Strict):
    """A local or SSO account. `password` (plain, or a `${ENV_VAR}` reference) is hashed on import;
    files never carry hashes back out."""

    username: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
    display_name: str = ""
    roles: list[Ident] = Field(default_factory=list)
    active: bool = True
    oidc_subject: str | None = None
    password: str | None = Field(default=None, min_length=8)


class UserOut(_Strict):
    id: int
    username: str
    display_name: str
    roles: list[str]
    active: bool
    oidc_subject: str | None
    has_password: bool
    pending_roles: list[str] = Field(default_factory=list)  # waiting for a second admin (role grants)


class UserPatch(_Strict):
    display_name: str | None = None
    roles: list[Ident] | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8)


class PolicyDocument(_Strict):
    """One policy file (or the merge of a directory of them)."""

    version: Literal[1] = 1
    purposes: list[PurposeIn] = Field(default_factory=list)
    roles: list[RoleIn] = Field(default_factory=list)
    cameras: list[CameraIn] = Field(default_factory=list)
    rules: list[RuleIn] = Field(default_factory=list)
    users: list[UserIn] = Field(default_factory=list)


class RawRequestIn(_Strict):
    camera_id: Ident
    purpose: Ident
    case_ref: str = Field(min_length=1, max_length=200)
    justification: str = Field(default="", max_length=2000)


class RawApproveIn(_Strict):
    minutes: int | None = Field(default=None, gt=0, description="length of the raw period; capped by policy")


class ReasonIn(_Strict):
    reason: str = Field(min_length=1, max_length=500)


class RawRequestOut(BaseModel):
    id: str
    requester: str
    camera_id: str
    purpose: str
    case_ref: str
    justification: str
    status: str
    requested_at: dt.datetime
    approver: str | None = None
    decided_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    use_by: dt.datetime | None = None
    revoked_by: str | None = None
    revoked_at: dt.datetime | None = None
