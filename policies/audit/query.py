"""Reading the log: filtered queries and counts, a page-at-a-time walk for exports, and monthly statistics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.sql import Select

from policies.audit.chain import Chain
from policies.audit.entries import AuditError, safe_text, utc
from policies.models import AuditEntry

_GROUPABLE = frozenset({"kind", "actor", "camera_id", "purpose", "mode", "decision", "reason"})
FILTERS = ("actor", "camera_id", "purpose", "decision", "kind", "since", "until", "mode")


class Queries(Chain):
    def _filtered(self, stmt: Select, *, actor: str | None = None, camera_id: str | None = None,
                  purpose: str | None = None, decision: str | None = None, kind: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None,
                  mode: str | None = None) -> Select:
        for col, value in ((AuditEntry.actor, actor), (AuditEntry.camera_id, camera_id),
                           (AuditEntry.purpose, purpose), (AuditEntry.decision, decision),
                           (AuditEntry.mode, mode)):
            if value is not None:
                stmt = stmt.where(col == safe_text(value))  # matches what append stored
        if kind is not None:
            # "view" matches view.request, view.start, view.end; "view.start" only itself.
            kind = safe_text(kind)
            family = AuditEntry.kind.startswith(kind + ".", autoescape=True)
            stmt = stmt.where((AuditEntry.kind == kind) | family)
        if since is not None:
            stmt = stmt.where(AuditEntry.ts >= utc(since))
        if until is not None:
            stmt = stmt.where(AuditEntry.ts < utc(until))
        return stmt

    def query(self, *, limit: int = 1000, offset: int = 0, **filters: Any) -> list[AuditEntry]:
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise AuditError(f"unknown audit filter: {', '.join(sorted(unknown))}")
        if not 1 <= limit <= 10_000 or offset < 0:
            raise AuditError("limit must be 1-10000 and offset not negative")
        stmt = self._filtered(select(AuditEntry), **filters).order_by(AuditEntry.seq)
        stmt = stmt.limit(limit).offset(offset)
        with self.db.session() as s:
            entries = list(s.scalars(stmt))
            s.expunge_all()
        for e in entries:
            e.ts = utc(e.ts)
        return entries

    def count(self, **filters: Any) -> int:
        with self.db.session() as s:
            return s.scalar(self._filtered(select(func.count()).select_from(AuditEntry), **filters)) or 0

    def _iter(self, **filters: Any) -> Iterator[AuditEntry]:
        page, after = self.page_size, 0
        while True:
            stmt = self._filtered(select(AuditEntry), **filters).where(AuditEntry.seq > after)
            with self.db.session() as s:
                rows = list(s.scalars(stmt.order_by(AuditEntry.seq).limit(page)))
                s.expunge_all()
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].seq

    def monthly_counts(self, *, kind: str | None = "view.start", decision: str | None = None,
                       since: dt.datetime | None = None, until: dt.datetime | None = None,
                       by: Sequence[str] = ("camera_id", "purpose"), tz: str = "UTC") -> list[dict[str, Any]]:
        """Entries per month (of time zone `tz`) and grouping columns, e.g. views per camera per purpose
        per month. `kind` matches like in query ("auth" = every auth.* entry); None = every kind."""
        if not set(by) <= _GROUPABLE:
            raise AuditError(f"cannot group by {', '.join(sorted(set(by) - _GROUPABLE))}")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise AuditError(f"unknown time zone {tz!r}") from None
        cols = [getattr(AuditEntry, c) for c in by]
        if self.db.is_sqlite:
            # SQLite has no zone database: use the zone's current offset (exact for zones without DST).
            offset = zone.utcoffset(dt.datetime.now()) or dt.timedelta()
            minutes = int(offset.total_seconds() // 60)
            month = func.strftime("%Y-%m", AuditEntry.ts, f"{minutes:+d} minutes")
        else:
            month = func.to_char(func.timezone(tz, AuditEntry.ts), "YYYY-MM")
        month = month.label("month")
        stmt = self._filtered(select(month, *cols, func.count().label("count")).select_from(AuditEntry),
                              kind=kind, decision=decision, since=since, until=until)
        stmt = stmt.group_by(month, *cols).order_by(month, *cols)
        with self.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]
