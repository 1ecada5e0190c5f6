"""The trailer that ends every export: how many entries it holds, the first and last seq, the last hash,
a digest over every exported hash in order, the filters it was made with, signed with the log's key.

Each entry of an export checks itself (hash, signature) and its predecessor when that is in the copy,
but a copy can lose whole entries and stay consistent: its end cut off, or an entry taken out of a
filtered copy (which has gaps by design). The trailer is what the copy says about itself as a whole; it
is written last, so a copy that was cut lost it too."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from policies.audit.entries import signature_of

TRAILER_KIND = "trailer"  # the CSV row whose seq column says this holds the trailer (in its details column)
_FIELDS = ("count", "first_seq", "last_seq", "last_hash", "digest", "filters", "exported_at")


class Tally:
    """What a sequence of entries amounts to, as a trailer states it."""

    def __init__(self) -> None:
        self.count = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self._digest = hashlib.sha256()

    def add(self, seq: int, digest: str) -> None:
        self.count += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.last_seq, self.last_hash = seq, digest
        self._digest.update(f"{seq}:{digest}\n".encode())

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def trailer(self, key: bytes | None, filters: dict[str, Any]) -> dict[str, Any]:
        shown = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in sorted(filters.items())}
        doc: dict[str, Any] = {"count": self.count, "first_seq": self.first_seq, "last_seq": self.last_seq,
                               "last_hash": self.last_hash, "digest": self.digest, "filters": shown,
                               "exported_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        doc["signature"] = _signature(key, doc)
        return doc


def _signature(key: bytes | None, doc: dict[str, Any]) -> str | None:
    canon = json.dumps({k: doc.get(k) for k in _FIELDS}, sort_keys=True, separators=(",", ":"))
    return signature_of(key, hashlib.sha256(canon.encode()).hexdigest())


def trailer_problems(trailer: dict[str, Any] | None, tally: Tally, key: bytes | None) -> list[str]:
    """Whether the copy is what its trailer says it is."""
    if trailer is None:
        return ["the export has no trailer: its end was cut off (every export ends with one)"]
    problems: list[str] = []
    if key is not None and not hmac.compare_digest(str(trailer.get("signature") or ""),
                                                   _signature(key, trailer) or ""):
        problems.append("the export's trailer: edited (signature missing or does not match)")
    said = (trailer.get("count"), trailer.get("first_seq"), trailer.get("last_seq"), trailer.get("last_hash"))
    have = (tally.count, tally.first_seq, tally.last_seq, tally.last_hash)
    if said != have:
        span = f"seq {said[1]}-{said[2]}" if said[0] else "no entries"
        got = f"seq {have[1]}-{have[2]}" if have[0] else "none"
        problems.append(f"entries missing from the export: its trailer lists {said[0]} ({span}, last hash "
                        f"{str(said[3])[:12]}…), the copy holds {have[0]} ({got})")
    elif trailer.get("digest") != tally.digest:
        problems.append("entries missing from or replaced in the export: the trailer's digest of its "
                        "entries does not match")
    return problems


def is_unfiltered(trailer: dict[str, Any] | None) -> bool:
    return trailer is not None and not trailer.get("filters")
