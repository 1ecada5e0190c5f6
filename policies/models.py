"""Database tables of the control plane: cameras, purposes, roles, users, rules, raw-view requests,
view sessions and the access log. SQLAlchemy 2 typed mappings; portable between SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_uid() -> str:
    """A person's identity as tokens name it: random, so never reused (row ids are, on SQLite)."""
    return secrets.token_hex(16)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones. Compare only these."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON,
    }


class Purpose(Base):
    """A lawful purpose of viewing (ordinance list, configurable). `allows_raw`: may justify unmasking."""

    __tablename__ = "purposes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "criminal_investigation"
    label: Mapped[str] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # display names by language, {"zh-TW": ...}
    allows_raw: Mapped[bool] = mapped_column(Boolean, default=False)


class Role(Base):
    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "police_investigator"
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # display names by language, {"zh-TW": ...}
    can_view: Mapped[bool] = mapped_column(Boolean, default=False)  # may watch (anonymized) video at all
    can_request_raw: Mapped[bool] = mapped_column(Boolean, default=False)
    can_approve_raw: Mapped[bool] = mapped_column(Boolean, default=False)
    can_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # cameras, rules, users
    can_audit: Mapped[bool] = mapped_column(Boolean, default=False)  # access log and statistics


class UserRole(Base):
    __tablename__ = "user_roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_name: Mapped[str] = mapped_column(ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)


class User(Base):
    """An individual person (no shared accounts). Local password or external (OIDC) subject."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # What a token's subject names: never reused, unlike the row id (SQLite hands a deleted id out again).
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    # Moves on every change of roles, password or active flag: tokens carry it, older ones stop working.
    token_epoch: Mapped[int] = mapped_column(Integer, default=0)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # argon2
    oidc_subject: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    roles: Mapped[list[Role]] = relationship(secondary="user_roles", lazy="selectin")


class RoleGrant(Base):
    """Roles conferring watching, raw-view or admin rights, given by one admin and waiting for a second
    (policies.role_grants). Names people by uid: a grant never lands on a later user with a reused id."""

    __tablename__ = "role_grants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_uid: Mapped[str] = mapped_column(String(32), index=True)
    username: Mapped[str] = mapped_column(String(128))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    rights: Mapped[list[Any]] = mapped_column(default=list)  # what the roles confer, as requested
    # pending | approved | denied | expired | cancelled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_uid: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    decided_by_uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class Camera(Base):
    __tablename__ = "cameras"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    district: Mapped[str] = mapped_column(String(100), default="")
    agency: Mapped[str] = mapped_column(String(200), default="")
    purposes: Mapped[list[Any]] = mapped_column(default=list)  # purpose ids approved for this camera
    tags: Mapped[list[Any]] = mapped_column(default=list)
    signage: Mapped[bool] = mapped_column(Boolean, default=True)  # notice signs posted
    # Secrets: never returned to viewers, never logged.
    source_url: Mapped[str] = mapped_column(Text, default="")
    source_username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_password: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Static privacy masks: polygons in normalized [0, 1] image coordinates, [[[x, y], ...], ...].
    privacy_masks: Mapped[list[Any]] = mapped_column(default=list)
    keepalive: Mapped[bool] = mapped_column(Boolean, default=False)  # pull even when nobody watches
    # Moving people no face mask accounts for leave as a mosaic: "grey" (no colour) or "colour".
    silhouettes: Mapped[str] = mapped_column(String(16), default="grey")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rule(Base):
    """Grants a role the right to watch matching cameras for listed purposes, in listed modes and hours.
    A camera matches when any selector matches (ids, districts, tags; ["*"] in camera_ids = all)."""

    __tablename__ = "rules"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    roles: Mapped[list[Any]] = mapped_column(default=list)
    camera_ids: Mapped[list[Any]] = mapped_column(default=list)
    districts: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    purposes: Mapped[list[Any]] = mapped_column(default=list)
    modes: Mapped[list[Any]] = mapped_column(default=lambda: ["anonymized"])  # "anonymized" | "raw"
    # [{"days": [0..6] (Mon=0), "start": "HH:MM", "end": "HH:MM"}] in the relay's local zone; empty = always
    time_windows: Mapped[list[Any]] = mapped_column(default=list)
    max_session_s: Mapped[int] = mapped_column(Integer, default=8 * 3600)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class RawViewRequest(Base):
    """Dual control for unmasking: requested by one user, approved by a different one, time-limited."""

    __tablename__ = "raw_view_requests"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    purpose: Mapped[str] = mapped_column(ForeignKey("purposes.id"))
    case_ref: Mapped[str] = mapped_column(String(200))
    justification: Mapped[str] = mapped_column(Text, default="")
    # pending | approved | denied | revoked | expired
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")  # why it was denied or revoked


class ViewSession(Base):
    """One viewer watching one camera; holds the decision it was granted under."""

    __tablename__ = "view_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    raw_request_id: Mapped[str | None] = mapped_column(ForeignKey("raw_view_requests.id"), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    client: Mapped[str] = mapped_column(String(200), default="")
    roles: Mapped[list[Any]] = mapped_column(default=list)  # roles it was granted under; re-checked
    # The relay process (replica) that runs it: a replica that dies leaves its sessions for others to close.
    replica: Mapped[str] = mapped_column(String(64), default="", index=True)


class AuditEntry(Base):
    """Append-only, hash-chained access log entry. Holds no image data and no secrets."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("hash"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, 3... no gaps
    ts: Mapped[dt.datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(64))  # view.request, view.start, view.end, raw.approve, ...
    actor: Mapped[str] = mapped_column(String(128), default="")  # username or "anonymous"
    roles: Mapped[list[Any]] = mapped_column(default=list)
    camera_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # allow | deny
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditCheckpoint(Base):
    """Where the retained access log starts after retention removed older entries: the first retained
    entry chains to `hash` (the hash of removed entry `seq`). Each one is also logged as "audit.retention"."""

    __tablename__ = "audit_checkpoint"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seq: Mapped[int] = mapped_column(Integer)  # last removed entry
    hash: Mapped[str] = mapped_column(String(64))  # its hash
    removed: Mapped[int] = mapped_column(Integer, default=0)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditHead(Base):
    """One row: the last appended entry. Appends lock and move it, so removing the newest entries shows."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


# Auditors and login throttling look entries up by time, person and camera.
Index("ix_audit_log_ts", AuditEntry.ts)
Index("ix_audit_log_actor_ts", AuditEntry.actor, AuditEntry.ts)
Index("ix_audit_log_camera_ts", AuditEntry.camera_id, AuditEntry.ts)
