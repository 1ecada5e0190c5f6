"""`cctv-relay policy validate|import|export` and `cctv-relay user add|set-password|grant`: policy files
and local accounts from the command line (the `audit` command lives in policies.audit.cli).
Errors are one line each on stderr, exit status 1; nothing of a rejected file is applied."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from policies import files
from policies.audit.cli import register as register_audit
from policies.context import PolicyContext, build_context
from policies.db import first_line
from policies.defaults import load_defaults
from policies.models import Role, User
from policies.schemas import UserIn
from policies.settings import PolicySettings

CLI_ACTOR = "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "operator")


class _UsageError(Exception):
    pass


def register(subparsers: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--database-url",
            default=None,
            help="database URL (default: $CCTV_DATABASE_URL or the settings default)",
        )

    policy = subparsers.add_parser("policy", help="validate, import and export policy files (YAML)")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    p = sub.add_parser("validate", help="check a policy file or directory; exit 1 with file:line messages")
    p.add_argument("path", type=Path)
    p.add_argument(
        "--database-url",
        default=None,
        help="also check references against this database (default: the file alone)",
    )
    p.set_defaults(func=_validate)
    p = sub.add_parser("import", help="create-or-update from a policy file or directory, all or nothing")
    p.add_argument("path", type=Path)
    common(p)
    p.set_defaults(func=_import)
    p = sub.add_parser("export", help="write the current policy as YAML (credentials redacted)")
    p.add_argument("path", type=Path, nargs="?", help="output file (default: stdout)")
    p.add_argument("--include-secrets", action="store_true", help="write camera credentials too")
    common(p)
    p.set_defaults(func=_export)

    user = subparsers.add_parser("user", help="bootstrap local accounts")
    usub = user.add_subparsers(dest="user_command", required=True)
    p = usub.add_parser("add", help="create a local user")
    p.add_argument("username")
    p.add_argument("--role", action="append", default=[], help="role name (repeatable)")
    p.add_argument("--password", help="password (default: prompt; or $CCTV_NEW_PASSWORD)")
    p.add_argument("--display-name", default="")
    common(p)
    p.set_defaults(func=_user_add)
    p = usub.add_parser("set-password", help="set a local user's password")
    p.add_argument("username")
    p.add_argument("--password", help="password (default: prompt; or $CCTV_NEW_PASSWORD)")
    common(p)
    p.set_defaults(func=_user_password)
    p = usub.add_parser("grant", help="give a user roles (or take them with --revoke)")
    p.add_argument("username")
    p.add_argument("roles", nargs="+")
    p.add_argument("--revoke", action="store_true")
    common(p)
    p.set_defaults(func=_user_grant)

    register_audit(subparsers)


def _context(args: argparse.Namespace, seed: bool = True) -> PolicyContext:
    settings = PolicySettings()
    if getattr(args, "database_url", None):
        settings = settings.model_copy(update={"database_url": args.database_url})
    ctx = build_context(settings)
    if seed:
        load_defaults(ctx, actor=CLI_ACTOR)  # a fresh database starts from the shipped purposes/roles/rules
    return ctx


def _run(func: Any, args: argparse.Namespace) -> int:
    try:
        return int(func(args) or 0)
    except files.PolicyFileError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"rejected: {len(exc.problems)} problem(s); nothing was applied", file=sys.stderr)
        return 1
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"error: database: {first_line(exc)}", file=sys.stderr)
        return 1


def _validate(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        if not a.path.exists():
            raise _UsageError(f"{a.path}: no such file or directory")
        loaded = files.validate(a.path, db=_context(a, seed=False).db if a.database_url else None)
        doc = loaded.document
        print(
            f"ok: {len(doc.purposes)} purposes, {len(doc.roles)} roles, {len(doc.cameras)} cameras, "
            f"{len(doc.rules)} rules, {len(doc.users)} users"
        )
        return 0

    return _run(go, args)


def _import(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        if not a.path.exists():
            raise _UsageError(f"{a.path}: no such file or directory")
        loaded = files.load(a.path)
        ctx = _context(a)
        changes = files.apply(ctx.db, ctx.audit, loaded, actor=CLI_ACTOR, hasher=ctx.auth.hash_password,
                              allow_conflicting_duties=ctx.settings.allow_conflicting_duties)
        for ch in changes:
            print(f"{ch.action} {ch.kind} {ch.id}")
        print(f"imported: {len(changes)} change(s)")
        return 0

    return _run(go, args)


def _export(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        text = files.export(_context(a).db, secrets=a.include_secrets)
        if a.path is None:
            sys.stdout.write(text)
        else:
            a.path.write_text(text, encoding="utf-8")
            if a.include_secrets:
                a.path.chmod(0o600)
        return 0

    return _run(go, args)


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if os.environ.get("CCTV_NEW_PASSWORD"):
        return os.environ["CCTV_NEW_PASSWORD"]
    if not sys.stdin.isatty():
        raise _UsageError("no password: give --password, set CCTV_NEW_PASSWORD or run in a terminal")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise _UsageError("passwords differ")
    return first


def _user_add(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        ctx = _context(a)
        with ctx.db.session() as s:
            if s.scalar(select(User.id).where(User.username == a.username)) is not None:
                raise _UsageError(f"user {a.username!r} exists (use user set-password / user grant)")
        try:
            item = UserIn(
                username=a.username, display_name=a.display_name, roles=a.role, password=_password(a)
            )
        except ValueError as exc:
            raise _UsageError(str(exc).splitlines()[-1].strip()) from None
        _apply_user(ctx, item)
        print(f"created user {a.username} with roles {','.join(a.role) or '(none)'}")
        return 0

    return _run(go, args)


def _apply_user(ctx: PolicyContext, item: UserIn) -> None:
    loaded = files.LoadedPolicy(files.PolicyDocument(users=[item]))
    try:
        # The break-glass path: an operator with shell access grants at once, logged as such (role.grant).
        files.apply(ctx.db, ctx.audit, loaded, actor=CLI_ACTOR, hasher=ctx.auth.hash_password, source="cli",
                    allow_conflicting_duties=ctx.settings.allow_conflicting_duties)
    except files.PolicyFileError as exc:
        raise _UsageError("; ".join(exc.problems)) from None


def _user_password(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        ctx = _context(a)
        with ctx.db.session() as s:
            if s.scalar(select(User.id).where(User.username == a.username)) is None:
                raise _UsageError(f"no user {a.username!r}")
        password = _password(a)
        if len(password) < 8:
            raise _UsageError("password must be at least 8 characters")
        _apply_user(
            ctx,
            UserIn.model_construct(
                username=a.username, password=password, _fields_set={"username", "password"}
            ),
        )
        print(f"password set for {a.username}")
        return 0

    return _run(go, args)


def _user_grant(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> int:
        ctx = _context(a)
        with ctx.db.session() as s:
            user = s.scalar(select(User).where(User.username == a.username))
            if user is None:
                raise _UsageError(f"no user {a.username!r}")
            known = set(s.scalars(select(Role.name)))
            unknown = [r for r in a.roles if r not in known]
            if unknown:
                raise _UsageError(
                    f"unknown role(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
                )
            current = {r.name for r in user.roles}
        roles = sorted(current - set(a.roles)) if a.revoke else sorted(current | set(a.roles))
        _apply_user(
            ctx, UserIn.model_construct(username=a.username, roles=roles, _fields_set={"username", "roles"})
        )
        print(f"{a.username}: roles {','.join(roles) or '(none)'}")
        return 0

    return _run(go, args)
