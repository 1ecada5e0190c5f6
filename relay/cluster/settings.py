"""The cluster's settings, part of the relay's (`RelaySettings` inherits them): `CCTV_REPLICA_ID`,
`CCTV_ADVERTISE_PATH`, `CCTV_MAX_CAMERAS`, `CCTV_LEASE_TTL_S`, ..."""

from __future__ import annotations

import os
import re
import secrets
import socket

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPLICA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    # This replica's name among the relays sharing the database (a StatefulSet pod's name, "relay-0").
    # None: a single relay, named after its host and process (and a random tag: two apps in one process,
    # as tests make, are two replicas); it advertises no path of its own.
    replica_id: str | None = None
    # Where other replicas send this one's viewers (307) and where its sessions live (Location): a path the
    # ingress routes to this replica (default "/r/{replica_id}" when replica_id is set), or an absolute URL.
    advertise_path: str | None = None
    max_cameras: int | None = Field(default=None, ge=1)  # cameras this replica pulls at most (None: no limit)
    lease_ttl_s: float = Field(default=4.0, ge=1.0, le=60.0)  # a lease not renewed for this long is free
    lease_renew_s: float = Field(default=1.0, gt=0.0, le=20.0)  # renewals (and the heartbeat) this often
    replica_stale_s: float = Field(default=10.0, ge=2.0)  # silent this long: its open sessions are closed
    drain_grace_s: float = Field(default=2.0, ge=0.0, le=20.0)  # after SIGTERM, ended sessions say why

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSettings:
        if self.replica_id is not None and not _REPLICA_ID.match(self.replica_id):
            raise ValueError("replica_id: letters, digits, '.', '_' and '-' only, at most 64")
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise ValueError("lease_renew_s: at most half of lease_ttl_s (a lease survives a missed renewal)")
        if self.replica_stale_s < self.lease_ttl_s:
            raise ValueError("replica_stale_s: at least lease_ttl_s")
        return self

    def replica_name(self) -> str:
        """This replica's id: the setting, or (a single relay) its host, process id and a random tag."""
        return self.replica_id or f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"

    def advertised(self) -> str:
        """The prefix of this replica's own URLs ("" for a single relay without an id)."""
        if self.advertise_path is not None:
            return self.advertise_path.rstrip("/")
        return f"/r/{self.replica_id}" if self.replica_id else ""
