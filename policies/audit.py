"""The access log: append-only, hash-chained, optionally HMAC-signed evidence of every request, decision,
session, approval, change and refusal. Holds no image data, no secrets and no tokens.

Each entry's `hash` is sha256 over a canonical JSON of its fields plus the previous entry's hash, so an
edited, removed or reordered entry breaks the chain where it happened. With a signing key each hash is
also HMAC-SHA256-signed: without the key nobody can rewrite the chain and re-hash it consistently.

Appends are serialized across threads and processes: a transaction-level advisory lock on PostgreSQL,
`BEGIN IMMEDIATE` on SQLite; the entry and the head row (last seq + hash) move in the same transaction,
so a writer killed mid-append leaves either the whole entry or nothing.

Conventional kinds: view.request, view.start, view.end, raw.request, raw.approve, raw.deny, raw.revoke,
policy.change, camera.change, user.change, auth.login, auth.fail, auth.refused, auth.forbidden,
audit.access, audit.retention."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from policies.db import Database
from policies.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64
# Arbitrary constant naming "the access log" among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x43435456_4C4F47  # "CCTVLOG"
_HASHED_FIELDS = ("seq", "ts", "kind", "actor", "roles", "camera_id", "purpose", "mode", "decision",
                  "reason", "details")
EXPORT_FIELDS = (*_HASHED_FIELDS, "prev_hash", "hash", "signature")
_MAX_PROBLEMS = 1000
_OPTIONAL = ("camera_id", "purpose", "mode", "decision", "signature")
_GROUPABLE = frozenset({"kind", "actor", "camera_id", "purpose", "mode", "decision", "reason"})
_FILTERS = ("actor", "camera_id", "purpose", "decision", "kind", "since", "until")


class AuditError(Exception):
    """Bad input to the access log (one line, shown to users as is)."""


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    signed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems,
                "first_seq": self.first_seq, "last_seq": self.last_seq, "signed": self.signed}


def _fields(kind: str, actor: str, roles: Sequence[str], camera_id: str | None, purpose: str | None,
            mode: str | None, decision: str | None, reason: str, details: dict[str, Any] | None,
            ) -> dict[str, Any]:
    if not kind or len(kind) > 64:
        raise AuditError("audit kind must be 1-64 characters")
    if decision not in (None, "allow", "deny"):
        raise AuditError(f"audit decision must be allow or deny, not {decision!r}")
    return {
        "kind": _text(kind), "actor": _cut(actor or "anonymous", 128), "roles": [_text(r) for r in roles],
        # Callers may pass what a client sent: cut to the columns' sizes rather than lose the entry.
        # Empty means absent (so a CSV export, which cannot tell them apart, reads back the same).
        "camera_id": _cut(camera_id, 64) or None, "purpose": _cut(purpose, 64) or None,
        "mode": _cut(mode, 16) or None,
        "decision": decision, "reason": _text(reason or ""), "details": _plain(details),
    }


def _text(value: Any) -> str:
    # PostgreSQL refuses NUL in text; a hostile user name must not stop its own failure being logged.
    return str(value).replace("\x00", "\ufffd")


def _cut(value: Any, size: int) -> str | None:
    return None if value is None else _text(value)[:size]


def _key_bytes(key: bytes | str | None) -> bytes | None:
    return (key.encode("utf-8") if isinstance(key, str) else key) or None


def _signature(key: bytes | None, digest: str) -> str | None:
    return None if key is None else hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def _utc(ts: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything this module writes is UTC.
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _ts_text(ts: dt.datetime) -> str:
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details exactly as they will read back from the database (JSON types only)."""
    if not details:
        return {}
    if not isinstance(details, dict):
        raise AuditError("audit details must be a mapping")
    return _jsonable(details)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value)  # strings as they are; datetimes, paths and the like as their text


def entry_hash(fields: dict[str, Any], prev_hash: str) -> str:
    doc = {k: fields[k] for k in _HASHED_FIELDS}
    doc["ts"] = _ts_text(doc["ts"])
    doc["roles"] = list(doc["roles"] or [])
    doc["details"] = doc["details"] or {}
    doc["prev_hash"] = prev_hash
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class AuditLog:
    page_size = 1000  # entries read per query by verify and export

    def __init__(self, db: Database, signing_key: bytes | str | None = None,
                 retention_days: int = 365) -> None:
        self.db = db
        self._key = _key_bytes(signing_key)
        if retention_days < 1:
            raise AuditError("retention_days must be at least 1")
        self.retention_days = retention_days

    # -- writing -------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A transaction that holds the log's write lock until it commits."""
        with self.db.engine.connect() as conn:
            if self.db.is_sqlite:
                # pysqlite would defer BEGIN to the first write; take the write lock before reading the head.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _sign(self, digest: str) -> str | None:
        return _signature(self._key, digest)

    def _head(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
        if row is not None:
            return row.seq, row.hash
        # First append (or a log from before the head row existed): derive the head from the entries.
        newest = select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        last = conn.execute(newest).first()
        seq, digest = (last.seq, last.hash) if last else (0, GENESIS)
        conn.execute(insert(AuditHead).values(id=1, seq=seq, hash=digest))
        return seq, digest

    def _append(self, conn: Connection, fields: dict[str, Any]) -> AuditEntry:
        head_seq, head_hash = self._head(conn)
        # Stamped under the lock, so time never runs backwards along the chain (barring clock steps).
        fields = {**fields, "seq": head_seq + 1, "ts": dt.datetime.now(dt.UTC)}
        digest = entry_hash(fields, head_hash)
        row = {**fields, "prev_hash": head_hash, "hash": digest, "signature": self._sign(digest)}
        conn.execute(insert(AuditEntry).values(**row))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=row["seq"], hash=digest))
        return AuditEntry(**row)

    def append(self, kind: str, *, actor: str, roles: Sequence[str] = (), camera_id: str | None = None,
               purpose: str | None = None, mode: str | None = None, decision: str | None = None,
               reason: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
        fields = _fields(kind, actor, roles, camera_id, purpose, mode, decision, reason, details)
        with self._locked() as conn:
            return self._append(conn, fields)

    def append_in(self, session: Session, kind: str, *, actor: str, roles: Sequence[str] = (),
                  camera_id: str | None = None, purpose: str | None = None, mode: str | None = None,
                  decision: str | None = None, reason: str = "", details: dict[str, Any] | None = None,
                  ) -> AuditEntry:
        """Append inside the caller's transaction, so the evidence commits or rolls back together with
        the change it records. Holds the log's write lock until that transaction ends: keep it short."""
        fields = _fields(kind, actor, roles, camera_id, purpose, mode, decision, reason, details)
        # Pending changes go first: the log's lock is taken last, so a writer holding it never waits
        # for a row lock (no lock-order deadlocks on PostgreSQL).
        session.flush()
        conn = session.connection()
        if self.db.is_sqlite:
            # Any write takes SQLite's single writer lock; a no-op update of the head takes it before we read.
            conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        return self._append(conn, fields)

    # -- verification --------------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        problems: list[str] = []
        with self.db.engine.connect() as conn:
            # Read everything compared from one snapshot, so an append in between cannot look like tampering.
            if self.db.is_sqlite:
                conn.exec_driver_sql("BEGIN")
            else:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            checkpoint = conn.execute(
                select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()
            head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
            start_seq, prev_hash = 1, GENESIS
            if checkpoint is not None:
                start_seq, prev_hash = checkpoint.seq + 1, checkpoint.hash
                problems += self._check_checkpoint(conn, checkpoint)
            expected, checked, prev_bad, first, last = start_seq, 0, False, None, None
            last_row_hash = prev_hash

            def written_after(digest: str) -> int | None:
                # Only asked once something is already wrong, so a clean log is read in one pass.
                return conn.execute(select(AuditEntry.seq).where(AuditEntry.hash == digest)).scalar()

            for row in self._rows(conn):
                seq = row["seq"]
                if seq < start_seq:
                    problems.append(f"seq {seq}: older than the retention checkpoint (seq {start_seq - 1}) "
                                    "but still present")
                    continue
                checked += 1
                first = seq if first is None else first
                last = seq
                gap = seq > expected
                if gap:
                    span = f"{expected}" if seq - 1 == expected else f"{expected}-{seq - 1}"
                    problems.append(f"seq {span}: removed")
                content_ok = entry_hash(dict(row), row["prev_hash"]) == row["hash"]
                bad = False
                if not content_ok:
                    bad = True
                    linked_to = written_after(row["prev_hash"])
                    if linked_to is not None and linked_to != seq - 1:
                        problems.append(f"seq {seq}: reordered (was written after seq {linked_to})")
                    else:
                        problems.append(f"seq {seq}: edited (content does not match its hash)")
                elif row["prev_hash"] != last_row_hash and not gap and not prev_bad:
                    bad = True
                    linked_to = written_after(row["prev_hash"])
                    if linked_to is not None and linked_to != seq - 1:
                        problems.append(f"seq {seq}: reordered (was written after seq {linked_to})")
                    else:
                        problems.append(f"seq {seq - 1}: edited (its hash was rewritten; seq {seq} "
                                        "chains to a different one)")
                if self._key is not None:
                    sig = row["signature"]
                    if not sig:
                        bad = True
                        problems.append(f"seq {seq}: edited (signature missing)")
                    elif not hmac.compare_digest(sig, self._sign(row["hash"]) or ""):
                        bad = True
                        problems.append(f"seq {seq}: edited (signature does not match)")
                prev_bad = bad
                last_row_hash = row["hash"]
                expected = seq + 1
            if head is not None and head.seq > expected - 1 and head.seq >= start_seq:
                span = f"{expected}" if head.seq == expected else f"{expected}-{head.seq}"
                problems.append(f"seq {span}: removed (the log ends at seq {expected - 1})")
            elif head is not None and head.seq < expected - 1:
                problems.append(f"seq {head.seq + 1}-{expected - 1}: not recorded by the head (inserted)")
            elif head is not None and head.seq == expected - 1 and checked and head.hash != last_row_hash:
                problems.append(f"seq {head.seq}: edited (does not match the head record)")
            conn.rollback()
        if len(problems) > _MAX_PROBLEMS:
            problems[_MAX_PROBLEMS:] = [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
        return VerifyResult(ok=not problems, checked=checked, problems=problems, first_seq=first,
                            last_seq=last, signed=self._key is not None)

    def _rows(self, conn: Connection) -> Iterator[Any]:
        """Every entry in seq order, a page at a time (memory stays flat however long the log)."""
        page, after = self.page_size, None
        while True:
            stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(page)
            if after is not None:
                stmt = stmt.where(AuditEntry.seq > after)
            rows = list(conn.execute(stmt).mappings())
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]["seq"]

    def _check_checkpoint(self, conn: Connection, cp: Any) -> list[str]:
        """A checkpoint is only trusted if the chain itself records it (and, when signed, its signature)."""
        problems: list[str] = []
        if self._key is not None and not hmac.compare_digest(cp.signature or "", self._checkpoint_sig(cp)):
            problems.append(f"checkpoint at seq {cp.seq}: edited (signature does not match)")
        rows = conn.execute(select(AuditEntry.details).where(AuditEntry.kind == "audit.retention",
                                                             AuditEntry.seq > cp.seq)).scalars()
        if not any(d.get("checkpoint_seq") == cp.seq and d.get("checkpoint_hash") == cp.hash for d in rows):
            problems.append(f"checkpoint at seq {cp.seq}: not recorded by any audit.retention entry")
        return problems

    def _checkpoint_sig(self, cp: Any) -> str:
        return self._sign(hashlib.sha256(f"checkpoint:{cp.seq}:{cp.hash}".encode()).hexdigest()) or ""

    # -- retention -----------------------------------------------------------------------------------

    def _cutoff(self, now: dt.datetime | None) -> dt.datetime:
        return _utc(now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.retention_days)

    def retention_due(self, now: dt.datetime | None = None) -> bool:
        """Whether apply_retention would remove anything: the oldest entry is past retention_days.
        One indexed query, so a scheduler may ask often and apply retention only when due."""
        with self.db.engine.connect() as conn:
            oldest = conn.execute(select(func.min(AuditEntry.ts))).scalar()
        return oldest is not None and _utc(oldest) < self._cutoff(now)

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
                            "cutoff": _ts_text(cutoff)},
            })
            return removed

    # -- reading -------------------------------------------------------------------------------------

    def _filtered(self, stmt: Select, *, actor: str | None = None, camera_id: str | None = None,
                  purpose: str | None = None, decision: str | None = None, kind: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None) -> Select:
        for col, value in ((AuditEntry.actor, actor), (AuditEntry.camera_id, camera_id),
                           (AuditEntry.purpose, purpose), (AuditEntry.decision, decision)):
            if value is not None:
                stmt = stmt.where(col == _text(value))  # matches what append stored
        if kind is not None:
            # "view" matches view.request, view.start, view.end; "view.start" only itself.
            kind = _text(kind)
            family = AuditEntry.kind.startswith(kind + ".", autoescape=True)
            stmt = stmt.where((AuditEntry.kind == kind) | family)
        if since is not None:
            stmt = stmt.where(AuditEntry.ts >= _utc(since))
        if until is not None:
            stmt = stmt.where(AuditEntry.ts < _utc(until))
        return stmt

    def query(self, *, limit: int = 1000, offset: int = 0, **filters: Any) -> list[AuditEntry]:
        unknown = set(filters) - set(_FILTERS)
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
            e.ts = _utc(e.ts)
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

    def export(self, fmt: Literal["csv", "json"] = "json", **filters: Any) -> Iterator[str]:
        """The matching entries, streamed in chunks, with their hashes so a copy can be checked later."""
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise AuditError(f"unknown audit filter: {', '.join(sorted(unknown))}")
        if fmt == "csv":
            return self._export_csv(filters)
        if fmt == "json":
            return self._export_json(filters)
        raise AuditError(f"export format must be csv or json, not {fmt!r}")

    def _export_csv(self, filters: dict[str, Any]) -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(EXPORT_FIELDS)
        for n, entry in enumerate(self._iter(**filters), 1):
            d = entry_dict(entry)
            d["roles"] = ";".join(d["roles"])
            d["details"] = json.dumps(d["details"], sort_keys=True, ensure_ascii=False)
            writer.writerow(["" if d[k] is None else d[k] for k in EXPORT_FIELDS])
            if n % 200 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    def _export_json(self, filters: dict[str, Any]) -> Iterator[str]:
        yield "["
        for n, entry in enumerate(self._iter(**filters)):
            yield ("," if n else "") + "\n" + json.dumps(entry_dict(entry), ensure_ascii=False)
        yield "\n]\n"

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


def verify_export(entries: Iterable[dict[str, Any]], signing_key: bytes | str | None = None) -> VerifyResult:
    """Check a copy handed out by export(): each entry still matches its hash (and signature, given
    the key), and consecutive entries still chain. A filtered export has gaps by design, so order is
    only checked between entries whose predecessor is in the copy."""
    key = _key_bytes(signing_key)
    problems: list[str] = []
    checked, first, last = 0, None, None
    prev: dict[str, Any] | None = None
    for entry in entries:
        checked += 1
        seq = entry["seq"]
        first = seq if first is None else first
        last = seq
        if entry_hash(entry, entry["prev_hash"]) != entry["hash"]:
            problems.append(f"seq {seq}: edited (content does not match its hash)")
        elif prev is not None and seq <= prev["seq"]:
            problems.append(f"seq {seq}: reordered (after seq {prev['seq']})")
        elif prev is not None and prev["seq"] == seq - 1 and entry["prev_hash"] != prev["hash"]:
            problems.append(f"seq {seq}: does not chain to seq {seq - 1}")
        if key is not None and not hmac.compare_digest(entry.get("signature") or "",
                                                       _signature(key, entry["hash"]) or ""):
            problems.append(f"seq {seq}: edited (signature missing or does not match)")
        prev = entry
    return VerifyResult(ok=not problems, checked=checked, problems=problems[:_MAX_PROBLEMS],
                        first_seq=first, last_seq=last, signed=key is not None)


def read_export(text: str, fmt: Literal["csv", "json"]) -> list[dict[str, Any]]:
    """Entries of an export() file, typed back as the log holds them."""
    try:
        if fmt == "json":
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise ValueError("not a list of entries")
        else:
            rows = []
            for row in csv.DictReader(io.StringIO(text)):
                row = {k: (None if v == "" and k in _OPTIONAL else v) for k, v in row.items()}
                row["roles"] = row["roles"].split(";") if row["roles"] else []
                row["details"] = json.loads(row["details"]) if row["details"] else {}
                rows.append(row)
        for row in rows:
            row["seq"] = int(row["seq"])
            row["ts"] = dt.datetime.fromisoformat(str(row["ts"]).replace("Z", "+00:00"))
            missing = [k for k in EXPORT_FIELDS if k not in row]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuditError(f"not an access-log export ({fmt}): {exc}") from None
    return rows


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "ts": _ts_text(entry.ts), "kind": entry.kind, "actor": entry.actor,
        "roles": list(entry.roles or []), "camera_id": entry.camera_id, "purpose": entry.purpose,
        "mode": entry.mode, "decision": entry.decision, "reason": entry.reason,
        "details": entry.details or {}, "prev_hash": entry.prev_hash, "hash": entry.hash,
        "signature": entry.signature,
    }
