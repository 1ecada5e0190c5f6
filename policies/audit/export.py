"""Exports of the log (CSV or JSON, streamed, with hashes and signatures, ending with a signed trailer:
trailer.py) and the check of such a copy."""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from policies.audit.entries import (
    EXPORT_FIELDS,
    MAX_PROBLEMS,
    OPTIONAL_FIELDS,
    AuditError,
    VerifyResult,
    entry_dict,
    entry_hash,
    key_bytes,
    signature_of,
)
from policies.audit.query import FILTERS, Queries
from policies.audit.trailer import TRAILER_KIND, Tally, is_unfiltered, trailer_problems

_UNCHECKED: Any = object()


class Exports(Queries):
    def export(self, fmt: Literal["csv", "json"] = "json", **filters: Any) -> Iterator[str]:
        """The matching entries, streamed in chunks, with their hashes so a copy can be checked later."""
        unknown = set(filters) - set(FILTERS)
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
        tally = Tally()
        for n, entry in enumerate(self._iter(**filters), 1):
            tally.add(entry.seq, entry.hash)
            d = entry_dict(entry)
            d["roles"] = ";".join(d["roles"])
            d["details"] = json.dumps(d["details"], sort_keys=True, ensure_ascii=False)
            writer.writerow(["" if d[k] is None else d[k] for k in EXPORT_FIELDS])
            if n % 200 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        trailer = {k: "" for k in EXPORT_FIELDS}
        trailer["seq"] = TRAILER_KIND
        trailer["details"] = json.dumps(tally.trailer(self._key, filters), sort_keys=True)
        writer.writerow([trailer[k] for k in EXPORT_FIELDS])
        yield buf.getvalue()

    def _export_json(self, filters: dict[str, Any]) -> Iterator[str]:
        """A JSON list: the entries, then one `{"trailer": {...}}`."""
        yield "["
        tally = Tally()
        for entry in self._iter(**filters):
            tally.add(entry.seq, entry.hash)
            yield "\n" + json.dumps(entry_dict(entry), ensure_ascii=False) + ","
        yield "\n" + json.dumps({"trailer": tally.trailer(self._key, filters)}, sort_keys=True) + "\n]\n"


def verify_export(entries: Iterable[dict[str, Any]], signing_key: bytes | str | None = None,
                  trailer: dict[str, Any] | None = _UNCHECKED) -> VerifyResult:
    """Check a copy handed out by export(): each entry still matches its hash (and signature, given
    the key), and consecutive entries still chain. A filtered export has gaps by design, so order is
    only checked between entries whose predecessor is in the copy. Given the copy's `trailer` (None: it
    has none), the copy must also be whole: as many entries as the trailer lists, the same ones, and,
    unfiltered, no seq skipped."""
    key = key_bytes(signing_key)
    problems: list[str] = []
    checked, first, last = 0, None, None
    prev: dict[str, Any] | None = None
    tally, whole = Tally(), trailer is not _UNCHECKED and is_unfiltered(trailer)
    for entry in entries:
        checked += 1
        seq = entry["seq"]
        first = seq if first is None else first
        last = seq
        tally.add(seq, entry["hash"])
        if whole and prev is not None and seq > prev["seq"] + 1:
            span = f"{prev['seq'] + 1}" if seq == prev["seq"] + 2 else f"{prev['seq'] + 1}-{seq - 1}"
            problems.append(f"seq {span}: removed (missing from the export)")
        if entry_hash(entry, entry["prev_hash"]) != entry["hash"]:
            problems.append(f"seq {seq}: edited (content does not match its hash)")
        elif prev is not None and seq <= prev["seq"]:
            problems.append(f"seq {seq}: reordered (after seq {prev['seq']})")
        elif prev is not None and prev["seq"] == seq - 1 and entry["prev_hash"] != prev["hash"]:
            problems.append(f"seq {seq}: does not chain to seq {seq - 1}")
        if key is not None and not hmac.compare_digest(entry.get("signature") or "",
                                                       signature_of(key, entry["hash"]) or ""):
            problems.append(f"seq {seq}: edited (signature missing or does not match)")
        prev = entry
    if trailer is not _UNCHECKED:
        problems += trailer_problems(trailer, tally, key)
    return VerifyResult(ok=not problems, checked=checked, problems=problems[:MAX_PROBLEMS],
                        first_seq=first, last_seq=last, signed=key is not None)


def read_export(text: str, fmt: Literal["csv", "json"]) -> list[dict[str, Any]]:
    """Entries of an export() file, typed back as the log holds them."""
    return read_copy(text, fmt)[0]


def read_copy(text: str, fmt: Literal["csv", "json"]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Entries of an export() file, typed back as the log holds them, and its trailer (None: none)."""
    trailer: dict[str, Any] | None = None
    try:
        if fmt == "json":
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise ValueError("not a list of entries")
            if rows and isinstance(rows[-1], dict) and set(rows[-1]) == {"trailer"}:
                trailer = rows.pop()["trailer"]
        else:
            rows = []
            for row in csv.DictReader(io.StringIO(text)):
                if row.get("seq") == TRAILER_KIND:
                    trailer = json.loads(row["details"])
                    continue
                row = {k: (None if v == "" and k in OPTIONAL_FIELDS else v) for k, v in row.items()}
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
    if trailer is not None and not isinstance(trailer, dict):
        raise AuditError(f"not an access-log export ({fmt}): the trailer is not a mapping")
    return rows, trailer
