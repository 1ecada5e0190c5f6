"""The schema works the same on SQLite and PostgreSQL: JSON lists, timezone-aware times, cascades."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from policies.db import Database
from policies.models import Camera, Role, User, as_utc


def test_camera_lists_and_aware_times_round_trip(db: Database) -> None:
    when = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    with db.session() as s:
        s.add(Camera(id="cam-1", name="Ximen", purposes=["public_safety"], tags=["crossing"],
                     privacy_masks=[[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]], updated_at=when))
    with db.session() as s:
        cam = s.get(Camera, "cam-1")
        assert cam is not None
        assert cam.purposes == ["public_safety"]
        assert cam.privacy_masks == [[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]
        assert as_utc(cam.updated_at) == when


def test_user_roles_relationship(db: Database) -> None:
    with db.session() as s:
        role = Role(name="auditor", can_audit=True)
        s.add(User(username="amy", roles=[role]))
    with db.session() as s:
        user = s.scalars(select(User).where(User.username == "amy")).one()
        assert [r.name for r in user.roles] == ["auditor"]
        assert user.active is True
