"""The one door the relay knocks on: authorize a view, open/close view sessions, re-check them while
they run, and hand the relay a camera's source settings. Every decision and session event is written to
the access log here, so no caller can forget to.

CONTRACT (shared by policies/ and relay/): signatures below are what relay/ calls. Implementation lives
in this module; it uses policies.engine (decisions) and policies.audit (evidence)."""

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
