"""Policy files: precise `file:line: field: problem` rejections that change nothing, create-or-update
import, export round trip, secrets redacted, history in the access log; and the command line."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from policies import files
from policies.cli import register
from policies.context import PolicyContext, build_context
from policies.models import AuditEntry, Camera, Rule, User
from policies.settings import PolicySettings

GOOD = """\
version: 1
cameras:
  - id: cam-1
    name: Ximen exit 6
    district: Wanhua
    purposes: [public_safety, traffic_management]
    tags: [mrt]
    source_url: rtsp://admin:hunter2@10.0.0.5/stream1
    privacy_masks:
      - [[0.0, 0.0], [0.2, 0.0], [0.2, 0.1]]
  - id: cam-2
    name: Civic Blvd
    purposes: [traffic_management]
    source_url: rtsp://10.0.0.6/live
    source_username: ops
    source_password: ${CAM_CIVIC_PASSWORD}
rules:
  - id: mrt-daytime
    roles: [dashboard_viewer]
    tags: [mrt]
    purposes: [public_safety]
    time_windows:
      - {days: [Mon, Tue, Wed, Thu, Fri], start: "07:00", end: "23:00"}
users:
  - username: chen.li
    display_name: Chen Li
    roles: [police_operator]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def snapshot(ctx: PolicyContext) -> str:
    return files.export(ctx.db, secrets=True)


def test_bad_file_is_rejected_whole_with_file_line_field(context: PolicyContext, tmp_path: Path) -> None:
    files.apply(context.db, context.audit, files.load(write(tmp_path, "good.yaml", GOOD)), actor="test")
    before = snapshot(context)
    bad_text = GOOD.replace("name: Civic Blvd", "name: Civic Boulevard").replace(
        "    roles: [dashboard_viewer]\n", "    roles: [dashboard_viewer, traffic_cop]\n"
    )
    bad = write(tmp_path, "bad.yaml", bad_text)
    with pytest.raises(files.PolicyFileError) as err:
        files.apply(context.db, context.audit, files.load(bad), actor="test")
    assert err.value.problems == [f"{bad}:19: rules[0].roles[1]: unknown role 'traffic_cop'"]
    assert snapshot(context) == before  # the valid camera edit in the same file was not applied either

    shape = write(
        tmp_path,
        "shape.yaml",
        """\
        version: 1
        cameras:
          - id: cam-3
            name: Songshan
            latitude: 125.1
            purposes: [public_safety]
            colour: red
        rules:
          - id: r
            roles: [auditor]
            purposes: [public_safety]
            modes: [anonymized, xray]
            time_windows: [{start: "08:00", end: "8pm"}]
          - id: r2
            roles: [auditor]
            purposes: [public_safety]
        """,
    )
    with pytest.raises(files.PolicyFileError) as err:
        files.load(shape)
    assert err.value.problems == [
        f"{shape}:5: cameras[0].latitude: Input should be less than or equal to 90",
        f"{shape}:7: cameras[0].colour: Extra inputs are not permitted",
        f"{shape}:12: rules[0].modes[1]: Input should be 'anonymized' or 'raw'",
        f"{shape}:13: rules[0].time_windows[0].end: time '8pm' is not HH:MM",
        f"{shape}:14: rules[1]: a rule must select cameras by camera_ids, districts or tags",
    ]
    syntax = write(tmp_path, "syntax.yaml", "version: 1\ncameras:\n  - id: [unclosed\n")
    with pytest.raises(files.PolicyFileError) as err:
        files.load(syntax)
    assert err.value.problems[0].startswith(f"{syntax}:4: (yaml): ")
    assert snapshot(context) == before


def test_unresolvable_password_rejects_the_import(
    context: PolicyContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEW_USER_PASSWORD", raising=False)
    text = GOOD + "  - username: wu.jun\n    roles: [auditor]\n    password: ${NEW_USER_PASSWORD}\n"
    p = write(tmp_path, "users.yaml", text)
    before = snapshot(context)
    with pytest.raises(files.PolicyFileError) as err:
        files.apply(context.db, context.audit, files.load(p), actor="t", hasher=context.auth.hash_password)
    assert err.value.problems == [f"{p}:28: users[1]: environment variable NEW_USER_PASSWORD is not set"]
    assert snapshot(context) == before  # the cameras and rule earlier in the file were rolled back
    monkeypatch.setenv("NEW_USER_PASSWORD", "short")
    with pytest.raises(files.PolicyFileError, match="users\\[1\\]: password must be at least 8 characters"):
        files.apply(context.db, context.audit, files.load(p), actor="t", hasher=context.auth.hash_password)
    monkeypatch.setenv("NEW_USER_PASSWORD", "long enough now")
    assert (
        len(
            files.apply(
                context.db, context.audit, files.load(p), actor="t", hasher=context.auth.hash_password
            )
        )
        == 5
    )


def test_directory_duplicates_name_both_places(tmp_path: Path) -> None:
    d = tmp_path / "policy"
    d.mkdir()
    write(d, "10-cams.yaml", "cameras:\n  - id: cam-9\n    name: A\n")
    write(
        d, "20-more.yaml", "purposes: []\ncameras:\n  - id: cam-8\n    name: B\n  - id: cam-9\n    name: C\n"
    )
    with pytest.raises(files.PolicyFileError) as err:
        files.validate(d)
    assert err.value.problems == [
        f"{d / '20-more.yaml'}:5: cameras[1].id: duplicate camera 'cam-9' (first at {d / '10-cams.yaml'}:2)"
    ]


def test_import_export_round_trip_and_history(
    context: PolicyContext, tmp_path: Path, db_url: str, request: pytest.FixtureRequest
) -> None:
    changes = files.apply(context.db, context.audit, files.load(write(tmp_path, "p.yaml", GOOD)), actor="ana")
    assert [(c.action, c.kind, c.id) for c in changes] == [
        ("create", "camera", "cam-1"),
        ("create", "camera", "cam-2"),
        ("create", "rule", "mrt-daytime"),
        ("create", "user", "chen.li"),
    ]
    # Re-importing the same file changes nothing; an edit is one update with before/after.
    assert files.apply(context.db, context.audit, files.load(tmp_path / "p.yaml"), actor="ana") == []
    edited = write(tmp_path, "p2.yaml", GOOD.replace("rtsp://admin:hunter2@", "rtsp://admin:hunter3@"))
    (change,) = files.apply(context.db, context.audit, files.load(edited), actor="ana")
    assert change.action == "update" and change.id == "cam-1"
    with context.db.session() as s:
        log = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.kind == "policy.change", AuditEntry.actor == "ana")
                .order_by(AuditEntry.seq)
            )
        )
        cam = s.get(Camera, "cam-1")
        assert cam is not None and cam.source_url == "rtsp://admin:hunter3@10.0.0.5/stream1"
        assert s.get(Rule, "mrt-daytime").time_windows == [  # type: ignore[union-attr]
            {"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00"}
        ]
    assert len(log) == 5
    assert log[-1].details["before"]["source_url"] == "rtsp://***@10.0.0.5/stream1"
    assert log[-1].details["after"]["source_url"] == "rtsp://***@10.0.0.5/stream1"
    assert all("hunter" not in repr(e.details) for e in log)

    redacted = files.export(context.db)
    assert "hunter" not in redacted and "rtsp://***@10.0.0.5/stream1" in redacted
    assert "${CAM_CIVIC_PASSWORD}" in redacted  # a reference names a secret without holding it
    full = files.export(context.db, secrets=True)
    assert "hunter3" in full
    # Re-importing the redacted export leaves the real secret in place.
    assert (
        files.apply(context.db, context.audit, files.load(write(tmp_path, "r.yaml", redacted)), actor="ana")
        == []
    )
    assert files.export(context.db, secrets=True) == full

    # Full export -> fresh database of the same kind -> identical export.
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = request.getfixturevalue("make_pg_database")()
    fresh = build_context(PolicySettings(database_url=url))
    try:
        files.apply(fresh.db, fresh.audit, files.load(write(tmp_path, "full.yaml", full)), actor="ana")
        assert files.export(fresh.db, secrets=True) == full
        with fresh.db.session() as s:
            user = s.scalar(select(User).where(User.username == "chen.li"))
            assert user is not None and [r.name for r in user.roles] == ["police_operator"]
    finally:
        fresh.db.dispose()


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cctv-relay")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CCTV_DATABASE_URL", url)
    good = write(tmp_path, "p.yaml", GOOD)
    assert run_cli("policy", "validate", str(good)) == 0
    assert "ok: 0 purposes, 0 roles, 2 cameras, 1 rules, 1 users" in capsys.readouterr().out
    bad = write(tmp_path, "bad.yaml", GOOD.replace("[public_safety, traffic_management]", "[public_safty]"))
    assert run_cli("policy", "import", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:6: cameras[0].purposes[0]: unknown purpose 'public_safty'" in err
    assert "nothing was applied" in err and "Traceback" not in err
    assert run_cli("policy", "import", str(good)) == 0
    assert "imported: 4 change(s)" in capsys.readouterr().out
    out = tmp_path / "export.yaml"
    assert run_cli("policy", "export", str(out)) == 0
    exported = yaml.safe_load(out.read_text())
    assert [c["id"] for c in exported["cameras"]] == ["cam-1", "cam-2"]
    assert "hunter2" not in out.read_text()
    assert run_cli("policy", "export", "--include-secrets", "--database-url", url, str(out)) == 0
    assert "hunter2" in out.read_text() and out.stat().st_mode & 0o077 == 0

    assert (
        run_cli("user", "add", "wang.mei", "--role", "raw_approver", "--password", "a long passphrase") == 0
    )
    assert run_cli("user", "add", "wang.mei", "--password", "a long passphrase") == 1
    assert "exists" in capsys.readouterr().err
    assert run_cli("user", "grant", "wang.mei", "auditor") == 0
    assert run_cli("user", "grant", "wang.mei", "raw_approver", "--revoke") == 0
    assert run_cli("user", "grant", "wang.mei", "king") == 1
    assert "unknown role(s): king" in capsys.readouterr().err
    assert run_cli("user", "set-password", "wang.mei", "--password", "short") == 1
    assert run_cli("user", "set-password", "nobody", "--password", "long enough pw") == 1
    assert run_cli("user", "set-password", "wang.mei", "--password", "another long one") == 0

    ctx = build_context(PolicySettings(database_url=url))
    with ctx.db.session() as s:
        user = s.scalar(select(User).where(User.username == "wang.mei"))
        assert user is not None and [r.name for r in user.roles] == ["auditor"]
        password_hash = user.password_hash
    assert ctx.auth.verify_password(password_hash, "another long one")
    with ctx.db.session() as s:
        changes = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.kind == "policy.change", AuditEntry.reason == "update user wang.mei"
                )
            )
        )
    assert changes[-1].details["after"]["password"] == "changed"
    assert all("long" not in repr(c.details) for c in changes)
    ctx.db.dispose()


def test_defaults_seed_only_a_fresh_database(context: PolicyContext) -> None:
    from policies.defaults import load_defaults

    with context.db.session() as s:
        assert {r.id for r in s.scalars(select(Rule))} == {
            "city-ops-anonymized",
            "police-anonymized",
            "investigation",
        }
        files.delete(s, "rules", "investigation")
    assert load_defaults(context) == []  # an administrator's deletion stays deleted
    with context.db.session() as s:
        assert s.get(Rule, "investigation") is None
    (restored,) = load_defaults(context, force=True)
    assert (restored.action, restored.id) == ("create", "investigation")
