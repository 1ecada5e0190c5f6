"""Cameras as the relay needs them: a camera's source settings with credentials resolved (secrets are
only ever resolved here), and the cameras a person may watch now, for which purposes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from policies import engine
from policies.contract import CameraRuntime, PolicyError, Principal
from policies.credentials import CAMERA_ENV_NAME, expand_env, redact_url, with_credentials
from policies.db import Database
from policies.facts import Decider, camera_facts, enabled_rules, held_roles
from policies.models import Camera, Purpose, User

log = logging.getLogger(__name__)


class CameraAccess:
    def __init__(self, db: Database, decider: Decider) -> None:
        self.db = db
        self.decider = decider

    def camera_runtime(self, camera_id: str) -> CameraRuntime | None:
        """Source settings with `${ENV}` credentials resolved. A camera whose credentials cannot be
        resolved comes back disabled (and says why in the log) rather than failing the caller."""
        with self.db.session() as s:
            cam = s.get(Camera, camera_id)
            if cam is None:
                return None
            masks = [[(float(x), float(y)) for x, y in poly] for poly in cam.privacy_masks]
            name, keepalive, enabled, silhouettes = cam.name, cam.keepalive, cam.enabled, cam.silhouettes
            raw_url, raw_user, raw_password = cam.source_url, cam.source_username, cam.source_password
        try:
            url = expand_env(raw_url, CAMERA_ENV_NAME) or ""
            user = expand_env(raw_user, CAMERA_ENV_NAME)
            password = expand_env(raw_password, CAMERA_ENV_NAME)
        except PolicyError as exc:
            log.warning("camera %s disabled: %s", camera_id, exc)
            return CameraRuntime(
                id=camera_id,
                name=name,
                source_url="",
                redacted_url=f"(unavailable: {exc})",
                privacy_masks=masks,
                keepalive=keepalive,
                enabled=False,
                silhouettes=silhouettes,
            )
        url = with_credentials(url, user, password)
        return CameraRuntime(
            id=camera_id,
            name=name,
            source_url=url,
            redacted_url=redact_url(url),
            privacy_masks=masks,
            keepalive=keepalive,
            enabled=enabled,
            silhouettes=silhouettes,
        )

    def cameras_for(self, principal: Principal) -> list[dict[str, Any]]:
        """Cameras this person may watch now, with the purposes (and raw-capable purposes) open to them."""
        now = self.decider.now
        far = now() + dt.timedelta(days=1)
        probe = engine.RawGrant(id="-", status="approved", expires_at=far)
        out: list[dict[str, Any]] = []
        with self.db.session() as s:
            user = s.get(User, principal.user_id)
            roles = [engine.RoleFacts(r.name, r.can_view) for r in held_roles(user, principal.roles)]
            purposes = {p.id: engine.PurposeFacts(p.id, p.allows_raw) for p in s.scalars(select(Purpose))}
            rules = enabled_rules(s)
            for cam in s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.id)):
                facts = camera_facts(cam)
                allowed, raw = [], []
                for pid in cam.purposes:
                    if pid not in purposes:
                        continue
                    req = engine.Request(
                        roles=roles,
                        camera=facts,
                        camera_id=cam.id,
                        purpose=purposes[pid],
                        purpose_id=pid,
                        mode="anonymized",
                        now=now(),
                        tz=self.decider.tz,
                        rules=rules,
                        user_active=bool(user and user.active),
                    )
                    if engine.decide(req).allowed:
                        allowed.append(pid)
                    raw_req = dataclasses.replace(req, mode="raw", case_ref="-", raw_grant=probe)
                    if engine.decide(raw_req).allowed:
                        raw.append(pid)
                if allowed or raw:
                    out.append(
                        {
                            "id": cam.id,
                            "name": cam.name,
                            "latitude": cam.latitude,
                            "longitude": cam.longitude,
                            "address": cam.address,
                            "district": cam.district,
                            "agency": cam.agency,
                            "tags": list(cam.tags),
                            "signage": cam.signage,
                            "purposes": allowed,
                            "raw_purposes": raw,
                        }
                    )
        return out
