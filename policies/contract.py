"""What policies/ and relay/ share: the plain types a decision, a person and a camera travel in, and the
errors a policy refusal raises. Imports nothing of the project's own, so every module (the pure engine
included) may build on it without pulling in the database or the service."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["anonymized", "raw"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person, as established by policies.auth."""

    user_id: int
    username: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    mode: Mode
    reason: str  # the rule that allowed it, or the missing condition
    rule_id: str | None = None
    expires_at: dt.datetime | None = None
    raw_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class CameraRuntime:
    """What the data plane needs to pull and anonymize a camera. `source_url` carries credentials:
    relay code must never log or show it (use redacted_url)."""

    id: str
    name: str
    source_url: str
    redacted_url: str
    privacy_masks: list[list[tuple[float, float]]] = field(default_factory=list)  # normalized polygons
    keepalive: bool = False
    enabled: bool = True
    silhouettes: str = "grey"  # moving people's mosaic: "grey" or "colour"


class PolicyError(Exception):
    """A request the policy refuses or cannot parse; the message is one line, safe to show."""

    status = 400


class NotFound(PolicyError):
    status = 404


class Forbidden(PolicyError):
    status = 403


class Conflict(PolicyError):
    status = 409
