"""The bundle of control-plane objects an app holds (`app.state.policies`), wired from the settings
(`PolicySettings`, kept in policies.settings and named here too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.audit import AuditLog
from policies.auth import Authenticator
from policies.db import Database
from policies.service import PolicyService
from policies.settings import PolicySettings

__all__ = ["PolicyContext", "PolicySettings", "build_context"]


@dataclass
class PolicyContext:
    settings: PolicySettings
    db: Database
    audit: AuditLog
    service: PolicyService
    auth: Authenticator


def build_context(
    settings: PolicySettings, db: Database | None = None, create_tables: bool = True
) -> PolicyContext:
    """Wire the control plane: database, access log, authenticator and policy service."""
    if db is None:
        url = settings.database_url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Waiting long for a connection only piles requests up: fail the unit of work soon (503, overload.py).
        pool = {} if url.endswith(":memory:") else {"pool_timeout": settings.db_pool_timeout_s}
        db = Database(url, **pool)
    if create_tables:
        db.create_all()
    key = settings.audit_signing_key.encode() if settings.audit_signing_key else None
    audit = AuditLog(db, signing_key=key, retention_days=settings.retention_days,
                     anchor_file=settings.audit_anchor_file, anchor_every=settings.audit_anchor_every,
                     anchor_interval_s=settings.audit_anchor_interval_s,
                     refusal_window_s=settings.audit_refusal_window_s)
    return PolicyContext(
        settings=settings,
        db=db,
        audit=audit,
        service=PolicyService(db, audit, settings),
        auth=Authenticator(settings, db, audit),
    )
