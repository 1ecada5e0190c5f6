"""Policy files: validate, import (create-or-update, all or nothing) and export YAML, and the record
changes the admin API shares with import. Every change is logged as `policy.change` with before/after
(secrets redacted), in the transaction that makes it.

Errors name `file:line: field: problem`: YAML node marks map each value's path to its line, and pydantic
error locations (and our cross-reference checks) are looked up in that map."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.auth import AuthError
from policies.contract import PolicyError
from policies.credentials import ENV_REF, expand_env, redact_url, url_secrets
from policies.db import first_line
from policies.models import Camera, Purpose, Role, Rule, User
from policies.role_grants import system_grants
from policies.schemas import CameraIn, PolicyDocument, PurposeIn, RoleIn, RuleIn, UserIn

SECTIONS = ("purposes", "roles", "cameras", "rules", "users")
KEYS = {"purposes": "id", "roles": "name", "cameras": "id", "rules": "id", "users": "username"}
MODELS: dict[str, type[Any]] = {
    "purposes": Purpose,
    "roles": Role,
    "cameras": Camera,
    "rules": Rule,
    "users": User,
}
SCHEMAS: dict[str, type[BaseModel]] = {
    "purposes": PurposeIn,
    "roles": RoleIn,
    "cameras": CameraIn,
    "rules": RuleIn,
    "users": UserIn,
}
KIND = {"purposes": "purpose", "roles": "role", "cameras": "camera", "rules": "rule", "users": "user"}
REDACTED = "***"
# The shipped default policy (seeded by policies.defaults); validation without a database may refer to it.
DEFAULTS_DIR = Path(__file__).with_name("defaults")

Loc = tuple[str | int, ...]


class PolicyFileError(Exception):
    """A rejected policy: every problem found, one `file:line: field: problem` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class _Origin:
    file: str
    lines: dict[Loc, int]  # path inside that file -> 1-based line
    loc: Loc  # where the item sits in its own file, e.g. ("rules", 3)

    def line(self, sub: Loc = ()) -> int:
        path = (*self.loc, *sub)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


@dataclass
class LoadedPolicy:
    document: PolicyDocument
    origins: dict[tuple[str, int], _Origin] = field(default_factory=dict)  # (section, merged index)
    files: list[str] = field(default_factory=list)


def _field_name(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_map(node: yaml.Node, path: Loc = (), out: dict[Loc, int] | None = None) -> dict[Loc, int]:
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            out[(*path, k)] = key.start_mark.line + 1
            _line_map(value, (*path, k), out)
            out[(*path, k)] = key.start_mark.line + 1  # a field's line is its key's line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)
    return out


def _files(paths: Path | str | Sequence[Path | str]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found.extend(sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml") and x.is_file()))
        else:
            found.append(p)
    return found


def load(paths: Path | str | Sequence[Path | str]) -> LoadedPolicy:
    """Parse and shape-check a file, a directory of files, or several; merge them. Raises PolicyFileError."""
    files = _files(paths)
    if not files:
        raise PolicyFileError([f"{paths}: no policy files (*.yaml) found"])
    texts: list[tuple[str, str | None]] = []
    problems: list[str] = []
    for path in files:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}:1: (file): cannot read: {exc.__class__.__name__}: {exc}")
    return _merge(texts, problems)


def load_text(text: str, name: str = "policy.yaml") -> LoadedPolicy:
    """One policy file's text (an upload), checked like a file of that name. Raises PolicyFileError."""
    return _merge([(name, text)], [])


def _merge(texts: Sequence[tuple[str, str | None]], problems: list[str]) -> LoadedPolicy:
    merged: dict[str, list[BaseModel]] = {s: [] for s in SECTIONS}
    origins: dict[tuple[str, int], _Origin] = {}
    for name, text in texts:
        if text is None:
            continue
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            problems.append(f"{name}:{line}: (yaml): {exc.problem or exc.context}")
            continue
        except yaml.YAMLError as exc:  # no position to tell (e.g. a character YAML does not allow)
            problems.append(f"{name}:1: (yaml): {first_line(exc)}")
            continue
        lines = _line_map(node) if node is not None else {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                f"{name}:1: (top level): must be a mapping with purposes/roles/cameras/rules/users"
            )
            continue
        try:
            doc = PolicyDocument.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                origin = _Origin(name, lines, ())
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{name}:{origin.line(loc)}: {_field_name(loc)}: {msg}")
            continue
        for section in SECTIONS:
            for i, item in enumerate(getattr(doc, section)):
                origins[(section, len(merged[section]))] = _Origin(name, lines, (section, i))
                merged[section].append(item)
    if problems:
        raise PolicyFileError(problems)
    document = PolicyDocument(**merged)  # type: ignore[arg-type]
    return LoadedPolicy(document, origins, [name for name, _ in texts])


def check_references(
    loaded: LoadedPolicy, session: Session | None = None, also_known: PolicyDocument | None = None
) -> None:
    """Cross-references against the file plus what the database (or `also_known`) already holds.
    Raises PolicyFileError."""
    doc, problems = loaded.document, []

    def known(section: str) -> set[str]:
        key = KEYS[section]
        ids = {getattr(x, key) for x in getattr(doc, section)}
        if also_known is not None:
            ids |= {getattr(x, key) for x in getattr(also_known, section)}
        if session is not None:
            model = MODELS[section]
            ids |= set(session.scalars(select(getattr(model, key))))
        return ids

    def problem(section: str, index: int, sub: Loc, msg: str) -> None:
        origin = loaded.origins.get((section, index))
        if origin is None:  # not from a file (API, command line): name the field within the record
            problems.append(f"{_field_name(sub)}: {msg}")
        else:
            problems.append(f"{origin.file}:{origin.line(sub)}: {_field_name((*origin.loc, *sub))}: {msg}")

    for section in SECTIONS:
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(doc, section)):
            key = getattr(item, KEYS[section])
            if key in seen:
                first = loaded.origins.get((section, seen[key]))
                where = f" (first at {first.file}:{first.line()})" if first else ""
                problem(section, i, (KEYS[section],), f"duplicate {KIND[section]} {key!r}{where}")
            seen.setdefault(key, i)
    purposes, roles, cameras = known("purposes"), known("roles"), known("cameras")
    for i, cam in enumerate(doc.cameras):
        for j, p in enumerate(cam.purposes):
            if p not in purposes:
                problem("cameras", i, ("purposes", j), f"unknown purpose {p!r}")
    for i, rule in enumerate(doc.rules):
        for j, r in enumerate(rule.roles):
            if r not in roles:
                problem("rules", i, ("roles", j), f"unknown role {r!r}")
        for j, p in enumerate(rule.purposes):
            if p not in purposes:
                problem("rules", i, ("purposes", j), f"unknown purpose {p!r}")
        for j, c in enumerate(rule.camera_ids):
            if c != "*" and c not in cameras:
                problem("rules", i, ("camera_ids", j), f"unknown camera {c!r}")
    for i, user in enumerate(doc.users):
        for j, r in enumerate(user.roles):
            if r not in roles:
                problem("users", i, ("roles", j), f"unknown role {r!r}")
    if problems:
        raise PolicyFileError(problems)


# -- records <-> plain data (shared with the admin API) ----------------------------------------------


def _is_ref(value: str | None) -> bool:
    """A value made only of `${ENV}` references names a secret without holding one."""
    return bool(value) and not ENV_REF.sub("", value or "").strip()


def record_dict(section: str, obj: Any, secrets: bool = False) -> dict[str, Any]:
    """The record as a policy file writes it. Without `secrets`, credentials are redacted (kept only
    where they are `${ENV}` references) and password hashes never leave."""
    if section == "users":
        return {
            "username": obj.username,
            "display_name": obj.display_name,
            "roles": sorted(r.name for r in obj.roles),
            "active": obj.active,
            "oidc_subject": obj.oidc_subject,
        }
    schema = SCHEMAS[section]
    data = {name: getattr(obj, name) for name in schema.model_fields}
    if section == "cameras":
        data["privacy_masks"] = [[list(p) for p in poly] for poly in obj.privacy_masks]
        if not secrets:
            url = data["source_url"] or ""
            if any(not _is_ref(secret) for secret in url_secrets(url)):
                data["source_url"] = redact_url(url)
            for k in ("source_username", "source_password"):
                if data[k] and not _is_ref(data[k]):
                    data[k] = REDACTED
    return data


def _writable(section: str, item: BaseModel, only_set: bool) -> dict[str, Any]:
    data = item.model_dump(mode="json", exclude_unset=only_set)
    data.pop(KEYS[section], None)
    if section == "cameras":
        # A redacted export re-imported must not overwrite the real secret with the placeholder.
        for k in ("source_username", "source_password"):
            if data.get(k) == REDACTED:
                data.pop(k)
        if REDACTED in (data.get("source_url") or ""):
            data.pop("source_url")
    return data


@dataclass
class Change:
    kind: str  # purpose | role | camera | rule | user
    id: str
    action: str  # create | update | delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def upsert(
    session: Session,
    section: str,
    item: BaseModel,
    hasher: Callable[[str], str] | None = None,
    only_set: bool = True,
    create_only: bool = False,
    env: bool = True,
) -> Change | None:
    """Create the record or update the fields the input sets. Returns the change, None if nothing changed.
    `env`: resolve `${NAME}` in user passwords (files and the command line; not the web API)."""
    model, key = MODELS[section], KEYS[section]
    ident = getattr(item, key)
    if section == "users":
        existing = session.scalar(select(User).where(User.username == ident))
    else:
        existing = session.get(model, ident)
    if existing is not None and create_only:
        return None
    before = record_dict(section, existing) if existing is not None else None
    # Compare with secrets (a changed password is a change), log without them.
    before_full = record_dict(section, existing, secrets=True) if existing is not None else None
    data = _writable(section, item, only_set and existing is not None)
    obj = existing if existing is not None else model(**{key: ident})
    if section == "users":
        password = data.pop("password", None)
        roles = data.pop("roles", None)
        if password:
            if hasher is None:
                raise PolicyFileError([f"user {ident}: passwords need the authenticator to hash them"])
            obj.password_hash = hasher((expand_env(password) if env else password) or "")
        if roles is not None:
            obj.roles = list(session.scalars(select(Role).where(Role.name.in_(roles))))
    for name, value in data.items():
        setattr(obj, name, value)
    if existing is None:
        session.add(obj)
    session.flush()
    after = record_dict(section, obj)
    password_changed = section == "users" and bool(getattr(item, "password", None))
    if before_full == record_dict(section, obj, secrets=True) and not password_changed:
        return None
    if password_changed:
        after = {**after, "password": "changed"}
    elif before == after:
        after = {**after, "credentials": "changed"}
    return Change(KIND[section], str(ident), "create" if before is None else "update", before, after)


def delete(session: Session, section: str, ident: str) -> Change | None:
    model, key = MODELS[section], KEYS[section]
    obj = (
        session.scalar(select(User).where(User.username == ident))
        if section == "users"
        else session.get(model, ident)
    )
    if obj is None:
        return None
    before = record_dict(section, obj)
    session.delete(obj)
    session.flush()
    return Change(KIND[section], str(getattr(obj, key)), "delete", before, None)


def log_changes(
    audit: Any,
    actor: str,
    roles: Sequence[str],
    changes: Iterable[Change],
    source: str,
    session: Session | None = None,
) -> None:
    """Log each change; pass the `session` that made them so they and their entries commit together."""
    for ch in changes:
        write = audit.append if session is None else functools.partial(audit.append_in, session)
        write(
            "policy.change",
            actor=actor,
            roles=roles,
            camera_id=ch.id if ch.kind == "camera" else None,
            decision="allow",
            reason=f"{ch.action} {ch.kind} {ch.id}",
            details={
                "object": ch.kind,
                "id": ch.id,
                "action": ch.action,
                "source": source,
                "before": ch.before,
                "after": ch.after,
            },
        )


# -- import / export ---------------------------------------------------------------------------------


def validate(paths: Path | str | Sequence[Path | str], db: Any = None) -> LoadedPolicy:
    """Shape and references. Without a database, references may also name the shipped defaults."""
    loaded = load(paths)
    if db is None:
        check_references(loaded, also_known=load(DEFAULTS_DIR).document)
    else:
        with db.session() as s:
            check_references(loaded, s)
    return loaded


def apply(
    db: Any,
    audit: Any,
    loaded: LoadedPolicy,
    actor: str,
    roles: Sequence[str] = (),
    hasher: Callable[[str], str] | None = None,
    create_only: bool = False,
    source: str | None = None,
    allow_conflicting_duties: bool = False,
) -> list[Change]:
    """Import in one transaction: every record or none, each change logged in that transaction. Acts as
    the system (command line, demo): role grants apply at once, logged (policies.role_grants)."""
    changes: list[Change] = []
    with db.session() as s:
        check_references(loaded, s)
        for section in SECTIONS:  # purposes and roles first: cameras, rules and users refer to them
            for i, item in enumerate(getattr(loaded.document, section)):
                try:
                    ch = upsert(s, section, item, hasher=hasher, create_only=create_only)
                except (PolicyError, AuthError, ValueError) as exc:  # an unset ${ENV} password, a weak one
                    origin = loaded.origins.get((section, i))
                    where = f"{origin.file}:{origin.line()}: {_field_name(origin.loc)}: " if origin else ""
                    raise PolicyFileError([f"{where}{exc}"]) from None
                if ch is not None:
                    changes.append(ch)
        source = source or ",".join(loaded.files)
        log_changes(audit, actor, roles, changes, source, session=s)
        try:
            system_grants(audit, s, changes, actor, source, allow_conflicting_duties)
        except PolicyError as exc:
            raise PolicyFileError([str(exc)]) from None
    return changes


def export(db: Any, secrets: bool = False) -> str:
    out: dict[str, Any] = {"version": 1}
    with db.session() as s:
        for section in SECTIONS:
            model, key = MODELS[section], KEYS[section]
            rows = s.scalars(select(model).order_by(getattr(model, key)))
            out[section] = [record_dict(section, r, secrets=secrets) for r in rows]
    header = "# cctv-relay policy export" + ("" if secrets else " (credentials redacted)") + "\n"
    return header + yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=110)
