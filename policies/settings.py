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
    # Separation of duties (policies.duties): a grant of watching, raw-view or admin rights through the admin
    # API waits for a second admin for at most grant_pending_hours; conflicting rights in one person: 409.
    grants_need_second_admin: bool = True
    grant_pending_hours: float = 72.0
    allow_conflicting_duties: bool = False
    # Overload: a unit of work waits at most this long for a database connection, then the request gets 503.
    db_pool_timeout_s: float = 5.0
    # Logins (policies.login_limits): argon2 checks at once (0: one per core, at least 2), how many more may
    # wait and for how long before a quick 503; per client+account, per client and per account limits.
    login_hash_slots: int = 0
    login_queue: int = 16
    login_wait_s: float = 2.0
    login_free_failures: int = 5
    login_max_wait_s: float = 900.0
    login_client_max_failures: int = 20
    login_failure_window_s: float = 900.0
    login_account_max_failures: int = 50
    login_account_window_s: float = 60.0
