"""Anchors: signed records of the log's head (seq, which counts every entry ever written, and the hash of
that entry), kept where the log's own tables cannot take them back.

The head row moves with every append, so whoever can delete the newest entries can move it back too;
then the chain that is left is consistent and says nothing. An anchor is written every `every` entries,
and at the first append after `interval_s` without one, into

- `audit_anchor`, a table of its own that only ever grows (triggers refuse UPDATE and DELETE; a deployment
  grants the relay's database role INSERT and SELECT on it, nothing more), in the append's transaction;
- optionally a file a deployment names (`CCTV_AUDIT_ANCHOR_FILE`): one JSON line per anchor, appended and
  synced after the transaction commits; put it on storage the database's owner cannot rewrite (another
  host, a write-once or append-only mount).

With a signing key each anchor is HMAC-signed, so none can be forged. Verification takes the newest
anchor it can trust from either place: entries it vouched for that are gone are reported as missing,
with the last entry still present and the anchor that vouched for more."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import DDL, Connection, Integer, String, Text, event, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from policies.audit.entries import signature_of, ts_text, utc
from policies.models import Base


class AuditAnchor(Base):
    """A signed record of the log's head at one moment; rows are only ever added."""

    __tablename__ = "audit_anchor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column()
    seq: Mapped[int] = mapped_column(Integer)  # the head's seq: how many entries were ever written
    hash: Mapped[str] = mapped_column(String(64))  # the head entry's hash
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)


_REFUSE = "audit_anchor is append-only"
for _ddl in (
    DDL(f"CREATE TRIGGER audit_anchor_no_update BEFORE UPDATE ON audit_anchor "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END").execute_if(dialect="sqlite"),
    DDL(f"CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END").execute_if(dialect="sqlite"),
    DDL(f"CREATE OR REPLACE FUNCTION audit_anchor_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{_REFUSE}'; END $$").execute_if(dialect="postgresql"),
    DDL("CREATE TRIGGER audit_anchor_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_anchor "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_anchor_refuse()").execute_if(dialect="postgresql"),
):
    event.listen(AuditAnchor.__table__, "after_create", _ddl)


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    created_at: dt.datetime
    signature: str | None
    where: str  # "table" or the file's name, for messages

    def describe(self) -> str:
        return f"the anchor of {ts_text(self.created_at)} ({self.where})"


def anchor_signature(key: bytes | None, seq: int, digest: str, created_at: dt.datetime) -> str | None:
    text = f"anchor:{seq}:{digest}:{ts_text(created_at)}"
    return signature_of(key, hashlib.sha256(text.encode()).hexdigest())


class Anchors:
    """Writes anchors (the table in the append's transaction, the file after it commits) and reads them
    back for verification."""

    def __init__(self, key: bytes | None, file: str | Path | None = None, every: int = 20,
                 interval_s: float = 5.0) -> None:
        if every < 1 or interval_s < 0:
            raise ValueError("anchors: every must be at least 1 and interval_s not negative")
        self.key = key
        self.file = Path(file) if file else None
        self.every = every
        self.interval_s = interval_s
        self._last: tuple[int, dt.datetime] | None = None  # the last anchor this process wrote
        self._file_lock = threading.Lock()

    def due(self, seq: int, now: dt.datetime) -> bool:
        if self._last is None:
            return True  # the first append of this process anchors where the log stands
        last_seq, last_at = self._last
        if seq <= last_seq:
            return True  # the transaction that wrote the last one rolled back
        return seq - last_seq >= self.every or (now - last_at).total_seconds() >= self.interval_s

    def write(self, conn: Connection, seq: int, digest: str) -> dict[str, Any]:
        """Insert an anchor in `conn`'s transaction; returns the record for the file (written once the
        transaction has committed: `to_file`)."""
        now = dt.datetime.now(dt.UTC)
        sig = anchor_signature(self.key, seq, digest, now)
        conn.execute(insert(AuditAnchor).values(created_at=now, seq=seq, hash=digest, signature=sig))
        self._last = (seq, now)
        return {"ts": ts_text(now), "seq": seq, "hash": digest, "signature": sig}

    def to_file(self, records: Iterable[dict[str, Any]]) -> None:
        if self.file is None:
            return
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        if not lines:
            return
        with self._file_lock:
            fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, lines.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- reading -------------------------------------------------------------------------------------

    def load(self, conn: Connection) -> tuple[list[Anchor], list[str]]:
        """Every anchor of the table and the file whose signature holds (when signed), and the problems
        found reading them."""
        found: list[Anchor] = []
        problems: list[str] = []
        for row in conn.execute(select(AuditAnchor).order_by(AuditAnchor.id)).mappings():
            found.append(Anchor(row["seq"], row["hash"], utc(row["created_at"]), row["signature"], "table"))
        if self.file is not None:
            found += self._read_file(problems)
        trusted = []
        for a in found:
            if self.key is not None and not hmac.compare_digest(
                    a.signature or "", anchor_signature(self.key, a.seq, a.hash, a.created_at) or ""):
                problems.append(f"{a.describe()} for seq {a.seq}: edited (signature missing or wrong)")
            else:
                trusted.append(a)
        return trusted, problems

    def _read_file(self, problems: list[str]) -> list[Anchor]:
        assert self.file is not None
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"anchor file {self.file}: missing")
            return []
        except OSError as exc:
            problems.append(f"anchor file {self.file}: cannot be read ({exc.strerror})")
            return []
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                when = dt.datetime.fromisoformat(str(d["ts"]).replace("Z", "+00:00"))
                out.append(Anchor(int(d["seq"]), str(d["hash"]), utc(when), d.get("signature"),
                                  self.file.name))
            except (ValueError, KeyError, TypeError):
                problems.append(f"anchor file {self.file} line {n}: not an anchor")
        return out


def missing_tail(newest: Anchor, last_seq: int, last_hash: str) -> str:
    """The problem when the log ends before what an anchor vouched for."""
    have = f"seq {last_seq} (hash {last_hash[:12]}…)" if last_seq else "seq 0 (the log is empty)"
    return (f"entries after {have} are missing: {newest.describe()} vouched for seq {newest.seq} "
            f"(hash {newest.hash[:12]}…)")
