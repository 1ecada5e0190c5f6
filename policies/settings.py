"""The control plane's settings (`CCTV_*` environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # Anchors of the log's head (policies/audit/anchors.py): also appended to this file when set (storage
    # the database's owner cannot rewrite), every `audit_anchor_every` entries or after `..._interval_s`.
    audit_anchor_file: str | None = None
    audit_anchor_every: int = Field(default=20, ge=1)
    audit_anchor_interval_s: float = Field(default=5.0, ge=0)
    audit_refusal_window_s: float = Field(default=60.0, ge=0)  # repeated refusals: one entry per window
    retention_days: int = 365  # ordinance maximum for footage; applies to the log too
    raw_max_minutes: int = 30
    approval_window_minutes: int = 15  # an approval must be used within this window
    timezone: str = "Asia/Taipei"  # rule time windows are local time
