"""What an access-log entry is: its fields (cleaned to what the database will hand back), its hash and
signature, its exported form, and the result of checking a chain of them. No database here.

Each entry's `hash` is sha256 over a canonical JSON of its fields plus the previous entry's hash, so an
edited, removed or reordered entry breaks the chain where it happened. With a signing key each hash is
also HMAC-SHA256-signed: without the key nobody can rewrite the chain and re-hash it consistently."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.models import AuditEntry

GENESIS = "0" * 64
_HASHED_FIELDS = ("seq", "ts", "kind", "actor", "roles", "camera_id", "purpose", "mode", "decision",
                  "reason", "details")
EXPORT_FIELDS = (*_HASHED_FIELDS, "prev_hash", "hash", "signature")
MAX_PROBLEMS = 1000
OPTIONAL_FIELDS = ("camera_id", "purpose", "mode", "decision", "signature")


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
    last_hash: str | None = None  # of the last entry checked: what a clean result vouches for

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems,
                "first_seq": self.first_seq, "last_seq": self.last_seq, "last_hash": self.last_hash,
                "signed": self.signed}


def entry_fields(kind: str, actor: str, roles: Sequence[str], camera_id: str | None, purpose: str | None,
                 mode: str | None, decision: str | None, reason: str, details: dict[str, Any] | None,
                 ) -> dict[str, Any]:
    """An entry's own fields, checked and cleaned to exactly what the database will hand back."""
    if not kind or len(kind) > 64:
        raise AuditError("audit kind must be 1-64 characters")
    if decision not in (None, "allow", "deny"):
        raise AuditError(f"audit decision must be allow or deny, not {decision!r}")
    return {
        "kind": safe_text(kind), "actor": _cut(actor or "anonymous", 128),
        "roles": [safe_text(r) for r in roles],
        # Callers may pass what a client sent: cut to the columns' sizes rather than lose the entry.
        # Empty means absent (so a CSV export, which cannot tell them apart, reads back the same).
        "camera_id": _cut(camera_id, 64) or None, "purpose": _cut(purpose, 64) or None,
        "mode": _cut(mode, 16) or None,
        "decision": decision, "reason": safe_text(reason or ""), "details": _plain(details),
    }


def safe_text(value: Any) -> str:
    # PostgreSQL refuses NUL in text; a hostile user name must not stop its own failure being logged.
    return str(value).replace("\x00", "\ufffd")


def _cut(value: Any, size: int) -> str | None:
    return None if value is None else safe_text(value)[:size]


def key_bytes(key: bytes | str | None) -> bytes | None:
    return (key.encode("utf-8") if isinstance(key, str) else key) or None


def signature_of(key: bytes | None, digest: str) -> str | None:
    return None if key is None else hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def utc(ts: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything the access log writes is UTC.
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def ts_text(ts: dt.datetime) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details exactly as they will read back from the database (JSON types only)."""
    if not details:
        return {}
    if not isinstance(details, dict):
        raise AuditError("audit details must be a mapping")
    return _jsonable(details)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {safe_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    return safe_text(value)  # strings as they are; datetimes, paths and the like as their text


def entry_hash(fields: dict[str, Any], prev_hash: str) -> str:
    doc = {k: fields[k] for k in _HASHED_FIELDS}
    doc["ts"] = ts_text(doc["ts"])
    doc["roles"] = list(doc["roles"] or [])
    doc["details"] = doc["details"] or {}
    doc["prev_hash"] = prev_hash
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "ts": ts_text(entry.ts), "kind": entry.kind, "actor": entry.actor,
        "roles": list(entry.roles or []), "camera_id": entry.camera_id, "purpose": entry.purpose,
        "mode": entry.mode, "decision": entry.decision, "reason": entry.reason,
        "details": entry.details or {}, "prev_hash": entry.prev_hash, "hash": entry.hash,
        "signature": entry.signature,
    }
