"""Settings and the bundle of control-plane objects an app holds (`app.state.policies`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from policies.audit import AuditLog
    from policies.auth import Authenticator
    from policies.db import Database
    from policies.service import PolicyService


class PolicySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    database_url: str = "sqlite:///var/cctv-relay.db"
    token_secret: str = Field(default="", description="HMAC key for session tokens; generated if empty")
    token_ttl_s: int = 900
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None  # http(s) URL or file path of the city SSO's JWKS
    oidc_role_claim: str = "roles"
    oidc_role_map: dict[str, str] = Field(default_factory=dict)  # SSO group/role -> relay role
    audit_signing_key: str | None = None  # HMAC-SHA256 key: signs each log entry when set
    retention_days: int = 365  # ordinance maximum for footage; applies to the log too
    raw_max_minutes: int = 30
    approval_window_minutes: int = 15  # an approval must be used within this window
    timezone: str = "Asia/Taipei"  # rule time windows are local time


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
    from policies.audit import AuditLog
    from policies.auth import Authenticator
    from policies.db import Database
    from policies.service import PolicyService

    if db is None:
        url = settings.database_url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        db = Database(url)
    if create_tables:
        db.create_all()
    key = settings.audit_signing_key.encode() if settings.audit_signing_key else None
    audit = AuditLog(db, signing_key=key, retention_days=settings.retention_days)
    return PolicyContext(
        settings=settings,
        db=db,
        audit=audit,
        service=PolicyService(db, audit, settings),
        auth=Authenticator(settings, db, audit),
    )
