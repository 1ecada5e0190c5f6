"""Pydantic models of the policy files and the admin API: what a purpose, role, camera, rule, user and
raw-view request look like on the wire. Shape checks live here; cross-references (a rule naming an
unknown role) are checked in policies.files against the whole policy."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from policies.credentials import CAMERA_ENV_NAME, ENV_REF
from policies.engine import DAY_NAMES, parse_hhmm

# Bounds of every text and list the admin API and policy files take. A record, and the policy.change entry
# that copies it before and after, stays small; texts fit the database's columns where a column has a size.
IDENT_MAX = 64  # ids and names of purposes, roles, cameras, rules
NAME_MAX = 200  # names, labels, display names, agencies, case references (the columns' size)
TEXT_MAX = 2000  # descriptions, justifications
URL_MAX = 2048  # a camera's source URL
SECRET_MAX = 200  # a camera's source username or password (a literal or a ${CAM_*} reference)
PASSWORD_MAX = 1024  # a user's password, as the login takes it
LABEL_MAX = 64  # one tag, district or camera id in a list
LIST_MAX = 100  # purposes, roles, tags, districts, camera ids, time windows of one record
MASKS_MAX = 32  # static privacy masks of one camera
POINTS_MAX = 64  # corners of one mask

Ident = Annotated[str, Field(min_length=1, max_length=IDENT_MAX, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
ModeName = Literal["anonymized", "raw"]
# Display names per language (BCP 47 tags: "zh-TW", "en"); the dashboard and the public register show the
# one for the reader's language and fall back to `label` (purposes) or the id.
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Labels = dict[LanguageTag, Annotated[str, Field(min_length=1, max_length=NAME_MAX)]]
LABELS_HELP = "display names by language: {zh-TW: ..., en: ...}"
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX)]
ShortText = Annotated[str, Field(max_length=NAME_MAX)]
LongText = Annotated[str, Field(max_length=TEXT_MAX)]
Label = Annotated[str, Field(max_length=LABEL_MAX)]


class Problem(BaseModel):
    """A refusal: why, in one line."""

    detail: str


_PROBLEM_TEXT = {
    400: "the request is malformed or inconsistent",
    401: "no valid bearer token",
    403: "the caller's roles or the policy do not allow it",
    404: "no such record",
    409: "conflicts with what exists",
    410: "gone",
    413: "request body too large",
    415: "unsupported content type",
    429: "too many requests or sessions; see Retry-After",
    503: "not available now; try again",
}


def problems(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` for these refusals, each a `Problem`."""
    return {s: {"model": Problem, "description": _PROBLEM_TEXT[s]} for s in statuses}


class _Strict(BaseModel):
    # NaN and infinities are no coordinates or counts (and JSON cannot carry them back out).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PurposeIn(_Strict):
    id: Ident
    label: Name
    labels: Labels = Field(default_factory=dict, description=LABELS_HELP, max_length=LIST_MAX)
    allows_raw: bool = False


class PurposeOut(PurposeIn):
    pass


class RoleIn(_Strict):
    name: Ident
    description: LongText = ""
    labels: Labels = Field(default_factory=dict, description=LABELS_HELP, max_length=LIST_MAX)
    can_view: bool = False
    can_request_raw: bool = False
    can_approve_raw: bool = False
    can_admin: bool = False
    can_audit: bool = False


class RoleOut(RoleIn):
    pass


Coordinate = Annotated[float, Field(ge=0, le=1)]
# [x, y]: a two-item array rather than a tuple, whose prefixItems schema not every OpenAPI tool reads.
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(max_length=POINTS_MAX)]


class CameraBase(_Strict):
    id: Ident
    name: Name
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    address: Annotated[str, Field(max_length=300)] = ""
    district: Annotated[str, Field(max_length=100)] = ""
    agency: ShortText = ""
    purposes: list[Ident] = Field(
        default_factory=list, max_length=LIST_MAX, description="purposes this camera is approved for"
    )
    tags: list[Label] = Field(default_factory=list, max_length=LIST_MAX)
    signage: bool = True
    privacy_masks: list[Polygon] = Field(
        default_factory=list,
        max_length=MASKS_MAX,
        description="static masks: polygons ([x, y] corners) in normalized [0, 1] image coordinates",
    )
    keepalive: bool = False
    enabled: bool = True
    silhouettes: Literal["grey", "colour"] = Field(
        default="grey",
        description="moving people no face mask accounts for leave as a mosaic: grey, or keeping their "
                    "colours (faces are masked the same either way)",
    )

    @field_validator("privacy_masks")
    @classmethod
    def _polygons(cls, masks: list[Polygon]) -> list[Polygon]:
        for i, poly in enumerate(masks):
            if len(poly) < 3:
                raise ValueError(f"polygon {i} needs at least 3 points")
        return masks


class CameraIn(CameraBase):
    """A camera as configured. Credentials may be `${ENV_VAR}` references in policy files."""

    source_url: Annotated[str, Field(max_length=URL_MAX)] = ""
    source_username: Annotated[str, Field(max_length=SECRET_MAX)] | None = None
    source_password: Annotated[str, Field(max_length=SECRET_MAX)] | None = None

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
    days: list[int | Annotated[str, Field(max_length=16)]] = Field(
        default_factory=lambda: list(range(7)),
        max_length=14,
        description="days the window starts on: 0=Mon..6=Sun or Mon..Sun",
    )
    start: Annotated[str, Field(max_length=5)] = "00:00"
    end: Annotated[str, Field(max_length=5)] = "24:00"

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
    description: LongText = ""
    roles: list[Ident] = Field(min_length=1, max_length=LIST_MAX)
    camera_ids: list[Label] = Field(
        default_factory=list, max_length=LIST_MAX, description='camera ids; ["*"] = every camera'
    )
    districts: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=LIST_MAX)
    tags: list[Label] = Field(default_factory=list, max_length=LIST_MAX)
    purposes: list[Ident] = Field(min_length=1, max_length=LIST_MAX)
    modes: list[ModeName] = Field(default_factory=lambda: ["anonymized"], min_length=1, max_length=2)
    time_windows: list[TimeWindowIn] = Field(
        default_factory=list, max_length=LIST_MAX, description="local time; empty = always"
    )
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
    display_name: ShortText = ""
    roles: list[Ident] = Field(default_factory=list, max_length=LIST_MAX)
    active: bool = True
    oidc_subject: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    password: str | None = Field(default=None, min_length=8, max_length=PASSWORD_MAX)


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
    """The fields a change names; the others keep their values. None of them may be null (a user always
    has a display name, a list of roles and an active flag); a null password changes nothing."""

    display_name: ShortText = ""
    roles: list[Ident] = Field(default_factory=list, max_length=LIST_MAX)
    active: bool = True
    password: str | None = Field(default=None, min_length=8, max_length=PASSWORD_MAX)


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
    case_ref: Name
    justification: LongText = ""


class RawApproveIn(_Strict):
    minutes: int | None = Field(
        default=None, gt=0, le=7 * 24 * 60, description="length of the raw period; capped by policy"
    )


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
