"""Exports of the log (CSV or JSON, streamed, with hashes and signatures) and the check of such a copy."""

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


def verify_export(entries: Iterable[dict[str, Any]], signing_key: bytes | str | None = None) -> VerifyResult:
    """Check a copy handed out by export(): each entry still matches its hash (and signature, given
    the key), and consecutive entries still chain. A filtered export has gaps by design, so order is
    only checked between entries whose predecessor is in the copy."""
    key = key_bytes(signing_key)
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
                                                       signature_of(key, entry["hash"]) or ""):
            problems.append(f"seq {seq}: edited (signature missing or does not match)")
        prev = entry
    return VerifyResult(ok=not problems, checked=checked, problems=problems[:MAX_PROBLEMS],
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
    return rows
