"""`cctv-relay audit verify|query|export|retention`: the access log from the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from policies.audit import AuditError, AuditLog, entry_dict, read_copy, verify_export
from policies.db import Database, first_line
from policies.settings import PolicySettings


class _UsageError(Exception):
    pass


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="verify, query and export the access log")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", default=None,
                       help="database URL (default: $CCTV_DATABASE_URL or the settings default)")

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--actor", help="user name")
        p.add_argument("--camera", dest="camera_id", help="camera id")
        p.add_argument("--purpose")
        p.add_argument("--decision", choices=["allow", "deny"])
        p.add_argument("--kind", help="entry kind, or a family such as 'view' or 'auth'")
        p.add_argument("--since", help="ISO date/time (local time of the relay if no offset given)")
        p.add_argument("--until", help="ISO date/time, exclusive")

    p = sub.add_parser("verify", help="check the hash chain (and signatures); exit 1 on any problem")
    common(p)
    p.add_argument("--file", type=Path, help="check an exported copy (.csv or .json) instead of the database")
    p.set_defaults(func=_verify)

    p = sub.add_parser("query", help="list matching entries")
    common(p)
    filters(p)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_query)

    p = sub.add_parser("export", help="export matching entries with their hashes")
    common(p)
    filters(p)
    p.add_argument("--format", choices=["csv", "json"], default="json")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=_export)

    p = sub.add_parser("retention", help="remove entries older than the retention period, keep a checkpoint")
    common(p)
    p.add_argument("--days", type=int, default=None, help="override the retention_days setting")
    p.set_defaults(func=_retention)


def _open(args: argparse.Namespace) -> tuple[AuditLog, PolicySettings]:
    settings = PolicySettings()
    url = args.database_url or os.environ.get("CCTV_DATABASE_URL") or settings.database_url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise _UsageError(f"no database at {path}")
    db = Database(url)
    db.create_all()  # adds tables a newer version introduced; never alters existing ones
    days = getattr(args, "days", None) or settings.retention_days
    log = AuditLog(db, signing_key=settings.audit_signing_key, retention_days=days,
                   anchor_file=settings.audit_anchor_file, anchor_every=settings.audit_anchor_every,
                   anchor_interval_s=settings.audit_anchor_interval_s)
    return log, settings


def _when(value: str | None, tz: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _UsageError(f"not an ISO date/time: {value!r}") from None
    return when.replace(tzinfo=ZoneInfo(tz)) if when.tzinfo is None else when


def _filters(args: argparse.Namespace, settings: PolicySettings) -> dict[str, Any]:
    found = {k: getattr(args, k) for k in ("actor", "camera_id", "purpose", "decision", "kind")}
    found["since"] = _when(args.since, settings.timezone)
    found["until"] = _when(args.until, settings.timezone)
    return {k: v for k, v in found.items() if v is not None}


def _run(func: Any, args: argparse.Namespace) -> int:
    try:
        return func(args)
    except (_UsageError, AuditError) as exc:
        print(f"cctv-relay audit: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # The driver's message is enough and never includes the password of the URL.
        print(f"cctv-relay audit: database error: {first_line(exc)}", file=sys.stderr)
        return 2


def _verify(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        if args.file is not None:
            try:
                text = args.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise _UsageError(f"cannot read {args.file}: {exc.strerror}") from None
            fmt = "csv" if args.file.suffix.lower() == ".csv" else "json"
            entries, trailer = read_copy(text, fmt)
            result = verify_export(entries, PolicySettings().audit_signing_key, trailer)
        else:
            log, _ = _open(args)
            result = log.verify()
        span = f" (seq {result.first_seq}-{result.last_seq})" if result.checked else ""
        signed = "signed" if result.signed else "unsigned: no audit_signing_key set"
        if result.ok:
            print(f"ok: {result.checked} entries verified{span}, {signed}")
            return 0
        print(f"FAILED: {len(result.problems)} problem(s) in {result.checked} entries{span}, {signed}")
        for problem in result.problems:
            print(f"  {problem}")
        return 1

    return _run(go, args)


def _query(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        log, settings = _open(args)
        entries = log.query(limit=args.limit, offset=args.offset, **_filters(args, settings))
        if not args.json:
            print(f"{'seq':>7} {'time (UTC)':<27} {'kind':<16} {'actor':<16} {'camera':<14} {'purpose':<20} "
                  f"{'mode':<10} {'dec.':<5} reason")
        for e in entries:
            if args.json:
                print(json.dumps(entry_dict(e), ensure_ascii=False))
            else:
                line = (f"{e.seq:>7} {entry_dict(e)['ts']:<27} {e.kind:<16} {e.actor:<16} "
                        f"{e.camera_id or '-':<14} {e.purpose or '-':<20} {e.mode or '-':<10} "
                        f"{e.decision or '-':<5} {e.reason}")
                print(line.rstrip())
        return 0

    return _run(go, args)


def _export(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        log, settings = _open(args)
        chunks = log.export(args.format, **_filters(args, settings))
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                out.writelines(chunks)
        else:
            sys.stdout.writelines(chunks)
        return 0

    return _run(go, args)


def _retention(args: argparse.Namespace) -> int:
    def go(args: argparse.Namespace) -> int:
        log, _ = _open(args)
        removed = log.apply_retention()
        print(f"removed {removed} entries older than {log.retention_days} days")
        return 0

    return _run(go, args)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m policies.audit.cli ...`), same as `cctv-relay audit ...`."""
    parser = argparse.ArgumentParser(prog="cctv-relay")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
