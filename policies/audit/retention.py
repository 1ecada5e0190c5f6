"""Retention: entries older than retention_days are removed; a checkpoint row and an "audit.retention"
entry record where the retained chain now starts, so verification still holds end to end."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, insert, select

from policies.audit.chain import Chain
from policies.audit.entries import ts_text, utc
from policies.models import AuditCheckpoint, AuditEntry


class Retention(Chain):
    retention_days: int

    def _cutoff(self, now: dt.datetime | None) -> dt.datetime:
        return utc(now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.retention_days)

    def retention_due(self, now: dt.datetime | None = None) -> bool:
        """Whether apply_retention would remove anything: the oldest entry is past retention_days.
        One indexed query, so a scheduler may ask often and apply retention only when due."""
        with self.db.engine.connect() as conn:
            oldest = conn.execute(select(func.min(AuditEntry.ts))).scalar()
        return oldest is not None and utc(oldest) < self._cutoff(now)

    def apply_retention(self, now: dt.datetime | None = None) -> int:
        """Remove entries older than retention_days; record where the retained chain now starts (a
        checkpoint row plus an "audit.retention" entry). Returns the number of entries removed."""
        cutoff = self._cutoff(now)
        with self._locked() as conn:
            last_old = conn.execute(select(func.max(AuditEntry.seq)).where(AuditEntry.ts < cutoff)).scalar()
            if last_old is None:
                return 0
            self._head(conn)  # make sure the head row exists before the entries it could be derived from go
            last_hash = conn.execute(select(AuditEntry.hash).where(AuditEntry.seq == last_old)).scalar_one()
            removed = conn.execute(delete(AuditEntry).where(AuditEntry.seq <= last_old)).rowcount
            cp = AuditCheckpoint(seq=last_old, hash=last_hash, removed=removed)
            conn.execute(insert(AuditCheckpoint).values(
                created_at=dt.datetime.now(dt.UTC), seq=last_old, hash=last_hash, removed=removed,
                signature=self._checkpoint_sig(cp) or None))
            self._append(conn, {
                "kind": "audit.retention", "actor": "system", "roles": [],
                "camera_id": None, "purpose": None, "mode": None, "decision": None,
                "reason": f"entries older than {self.retention_days} days removed",
                "details": {"checkpoint_seq": last_old, "checkpoint_hash": last_hash, "removed": removed,
                            "cutoff": ts_text(cutoff)},
            })
            return removed
