"""The chain itself: appends (locked, hashed, signed), verification and the retention checkpoint's check.

Appends are serialized across threads and processes: a transaction-level advisory lock on PostgreSQL,
`BEGIN IMMEDIATE` on SQLite; the entry and the head row (last seq + hash) move in the same transaction,
so a writer killed mid-append leaves either the whole entry or nothing. Every so often an append also
writes an anchor (anchors.py) that verification holds the log's end against."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, insert, select, text, update
from sqlalchemy.orm import Session

from policies.audit.anchors import Anchors, missing_tail
from policies.audit.entries import (
    GENESIS,
    MAX_PROBLEMS,
    VerifyResult,
    entry_fields,
    entry_hash,
    key_bytes,
    signature_of,
)
from policies.db import Database
from policies.models import AuditCheckpoint, AuditEntry, AuditHead

# Arbitrary constant naming "the access log" among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x43435456_4C4F47  # "CCTVLOG"
_PENDING = "audit_anchors_pending"  # anchors a transaction wrote, for the file once it commits


class Chain:
    page_size = 1000  # entries read per query by verify and export

    def __init__(self, db: Database, signing_key: bytes | str | None = None, *,
                 anchor_file: str | Path | None = None, anchor_every: int = 20,
                 anchor_interval_s: float = 5.0) -> None:
        self.db = db
        self._key = key_bytes(signing_key)
        self.anchors = Anchors(self._key, anchor_file, anchor_every, anchor_interval_s)

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
                conn.info.pop(_PENDING, None)
                conn.rollback()
                raise
            conn.commit()
            self.anchors.to_file(conn.info.pop(_PENDING, ()))

    def _sign(self, digest: str) -> str | None:
        return signature_of(self._key, digest)

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
        if self.anchors.due(row["seq"], row["ts"]):
            conn.info.setdefault(_PENDING, []).append(self.anchors.write(conn, row["seq"], digest))
        return AuditEntry(**row)

    def append(self, kind: str, *, actor: str, roles: Sequence[str] = (), camera_id: str | None = None,
               purpose: str | None = None, mode: str | None = None, decision: str | None = None,
               reason: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
        fields = entry_fields(kind, actor, roles, camera_id, purpose, mode, decision, reason, details)
        with self._locked() as conn:
            return self._append(conn, fields)

    def append_in(self, session: Session, kind: str, *, actor: str, roles: Sequence[str] = (),
                  camera_id: str | None = None, purpose: str | None = None, mode: str | None = None,
                  decision: str | None = None, reason: str = "", details: dict[str, Any] | None = None,
                  ) -> AuditEntry:
        """Append inside the caller's transaction, so the evidence commits or rolls back together with
        the change it records. Holds the log's write lock until that transaction ends: keep it short."""
        fields = entry_fields(kind, actor, roles, camera_id, purpose, mode, decision, reason, details)
        # Pending changes go first: the log's lock is taken last, so a writer holding it never waits
        # for a row lock (no lock-order deadlocks on PostgreSQL).
        session.flush()
        conn = session.connection()
        if self.db.is_sqlite:
            # Any write takes SQLite's single writer lock; a no-op update of the head takes it before we read.
            conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        entry = self._append(conn, fields)
        pending = conn.info.pop(_PENDING, None)
        if pending:  # the anchor reaches the file only if the caller's transaction commits
            event.listen(session, "after_commit", lambda _s: self.anchors.to_file(pending), once=True)
        return entry

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
            anchors, anchor_problems = self.anchors.load(conn)
            problems += anchor_problems
            vouched = {a.seq: a for a in anchors if a.seq >= start_seq}
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
                anchor = vouched.get(seq)
                if anchor is not None and anchor.hash != row["hash"]:
                    problems.append(f"seq {seq}: does not match {anchor.describe()}")
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
            if head is None and anchors:
                problems.append("the head record is missing")
            newest = max(anchors, key=lambda a: a.seq, default=None)
            if newest is not None and newest.seq > expected - 1:
                problems.append(missing_tail(newest, expected - 1, last_row_hash))
            conn.rollback()
        if len(problems) > MAX_PROBLEMS:
            problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
        return VerifyResult(ok=not problems, checked=checked, problems=problems, first_seq=first,
                            last_seq=last, signed=self._key is not None,
                            last_hash=last_row_hash if checked else None)

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
