"""`AuditLog`: the access log as the rest of policies uses it, one object over the chain (append,
verify), retention, queries, statistics and exports; `refusals` aggregates refused requests."""

from __future__ import annotations

from pathlib import Path

from policies.audit.entries import AuditError
from policies.audit.export import Exports
from policies.audit.refusals import Refusals
from policies.audit.retention import Retention
from policies.db import Database


class AuditLog(Retention, Exports):
    def __init__(self, db: Database, signing_key: bytes | str | None = None,
                 retention_days: int = 365, *, anchor_file: str | Path | None = None,
                 anchor_every: int = 20, anchor_interval_s: float = 5.0,
                 refusal_window_s: float = 60.0) -> None:
        super().__init__(db, signing_key, anchor_file=anchor_file, anchor_every=anchor_every,
                         anchor_interval_s=anchor_interval_s)
        if retention_days < 1:
            raise AuditError("retention_days must be at least 1")
        self.retention_days = retention_days
        self.refusals = Refusals(self, window_s=refusal_window_s)  # refused requests, aggregated
