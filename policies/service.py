"""The one door the relay knocks on: authorize a view, open/close view sessions, re-check them while
they run, hand the relay a camera's source settings and the cameras a person may watch, and run raw-view
dual control. Every decision and session event is written to the access log, so no caller can forget to.

The shared types (Principal, Decision, CameraRuntime, the policy errors) are in policies.contract. The
work is done by the parts composed here: policies.sessions, policies.raw_views, policies.camera_access
(each asking the pure engine through policies.facts) and policies.rule_cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from policies.audit import AuditLog
from policies.camera_access import CameraAccess
from policies.contract import CameraRuntime, Decision, Mode, Principal
from policies.db import Database
from policies.facts import Decider
from policies.models import as_utc, utcnow
from policies.raw_views import RawViews
from policies.rule_cache import RuleCache
from policies.sessions import ViewSessions
from policies.settings import PolicySettings


class PolicyService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        settings: PolicySettings,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.clock = clock  # may be replaced later (tests): every part reads it through _now
        self.rules = RuleCache(db)
        decider = Decider(settings, now=self._now)
        self.tz = decider.tz
        self._sessions = ViewSessions(db, audit, decider, self.rules)
        self._cameras = CameraAccess(db, decider)
        self._raw = RawViews(db, audit, decider, settings)

    def _now(self) -> dt.datetime:
        return as_utc(self.clock())

    # -- viewing -------------------------------------------------------------------------------------

    def authorize_view(
        self,
        principal: Principal,
        camera_id: str,
        purpose: str,
        mode: Mode = "anonymized",
        case_ref: str | None = None,
        client: str = "",
    ) -> Decision:
        return self._sessions.authorize_view(principal, camera_id, purpose, mode, case_ref, client)

    def open_session(
        self,
        principal: Principal,
        camera_id: str,
        purpose: str,
        decision: Decision,
        client: str = "",
        replica: str = "",
    ) -> str:
        """`replica`: the relay process that runs it, so that others can close it should that one die."""
        return self._sessions.open_session(principal, camera_id, purpose, decision, client, replica)

    def check_session(self, session_id: str) -> Decision:
        """Re-decide a running session (the relay asks every second per viewer); see ViewSessions."""
        return self._sessions.check_session(session_id)

    def close_session(self, session_id: str, reason: str) -> None:
        self._sessions.close_session(session_id, reason)

    def close_sessions_on(self, replica: str, reason: str) -> list[str]:
        """Close (and log) every session still open on `replica`: one that died, or this one restarting.
        Safe to run from several processes at once: each session is closed and logged once."""
        ids = self._sessions.open_on(replica)
        for session_id in ids:
            self._sessions.close_session(session_id, reason)
        return ids

    # -- cameras -------------------------------------------------------------------------------------

    def camera_runtime(self, camera_id: str) -> CameraRuntime | None:
        """Source settings with `${ENV}` credentials resolved; a camera whose credentials cannot be
        resolved comes back disabled."""
        return self._cameras.camera_runtime(camera_id)

    def cameras_for(self, principal: Principal) -> list[dict[str, Any]]:
        """Cameras this person may watch now, with the purposes (and raw-capable purposes) open to them."""
        return self._cameras.cameras_for(principal)

    # -- raw-view dual control ----------------------------------------------------------------------

    def request_raw(
        self, principal: Principal, camera_id: str, purpose: str, case_ref: str, justification: str = ""
    ) -> dict[str, Any]:
        return self._raw.request_raw(principal, camera_id, purpose, case_ref, justification)

    def approve_raw(self, approver: Principal, request_id: str, minutes: int | None = None) -> dict[str, Any]:
        return self._raw.approve_raw(approver, request_id, minutes)

    def deny_raw(self, approver: Principal, request_id: str, reason: str) -> dict[str, Any]:
        return self._raw.deny_raw(approver, request_id, reason)

    def revoke_raw(self, actor: Principal, request_id: str, reason: str) -> dict[str, Any]:
        return self._raw.revoke_raw(actor, request_id, reason)

    def list_raw(self, principal: Principal, status: str | None = None) -> list[dict[str, Any]]:
        """Approvers and administrators see every request; others their own."""
        return self._raw.list_raw(principal, status)

    def get_raw(self, principal: Principal, request_id: str) -> dict[str, Any]:
        return self._raw.get_raw(principal, request_id)
