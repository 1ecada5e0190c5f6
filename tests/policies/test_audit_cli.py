"""`cctv-relay audit verify|query|export|retention` against real databases: exit status, where problems
are, export content, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from policies.audit import AuditLog
from policies.audit.cli import main
from policies.db import Database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log(db: Database, monkeypatch: pytest.MonkeyPatch) -> AuditLog:
    monkeypatch.setenv("CCTV_AUDIT_SIGNING_KEY", "cli-key")
    monkeypatch.setenv("CCTV_DATABASE_URL", db.url)
    audit = AuditLog(db, signing_key=b"cli-key")
    for i in range(5):
        audit.append("view.start", actor="alice" if i % 2 else "bob", roles=["operator"], camera_id="cam-1",
                     purpose="traffic", mode="anonymized", decision="allow", details={"session_id": f"s{i}"})
    audit.append("auth.fail", actor="mallory", decision="deny", reason="wrong password")
    return audit


def test_verify_ok_then_tampered(log: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == "ok: 6 entries verified (seq 1-6), signed"
    with log.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'carol' WHERE seq = 2"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 4"))
    assert main(["audit", "verify", "--database-url", log.db.url]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 problem(s)" in out
    assert "seq 2: edited" in out and "seq 4: removed" in out


def test_verify_wrong_key_fails(log: AuditLog, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CCTV_AUDIT_SIGNING_KEY", "another-key")
    assert main(["audit", "verify"]) == 1
    assert "seq 1: edited (signature does not match)" in capsys.readouterr().out


def test_query_and_export(log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--actor", "alice", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["seq"], d["actor"]) for d in lines] == [(2, "alice"), (4, "alice")]
    assert main(["audit", "query", "--decision", "deny"]) == 0
    out = capsys.readouterr().out
    assert "mallory" in out and "wrong password" in out and "alice" not in out

    target = tmp_path / "log.csv"
    assert main(["audit", "export", "--format", "csv", "--kind", "view", "-o", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5", "trailer"]
    assert json.loads(rows[2]["details"]) == {"session_id": "s2"}
    old = ["--since", "2000-01-01", "--until", "2000-02-01"]
    assert main(["audit", "export", "--format", "json", *old]) == 0
    assert [set(d) for d in json.loads(capsys.readouterr().out)] == [{"trailer"}]


def test_retention_command(log: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "retention"]) == 0
    assert capsys.readouterr().out.strip() == "removed 0 entries older than 365 days"
    assert main(["audit", "verify"]) == 0


def test_bad_input_is_one_line(log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--since", "yesterday"]) == 2
    assert capsys.readouterr().err == "cctv-relay audit: not an ISO date/time: 'yesterday'\n"
    assert main(["audit", "verify", "--database-url", f"sqlite:///{tmp_path}/missing.db"]) == 2
    assert capsys.readouterr().err.startswith("cctv-relay audit: no database at ")
    unreachable = "postgresql+psycopg://bob:topsecret@127.0.0.1:1/x"
    assert main(["audit", "verify", "--database-url", unreachable]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cctv-relay audit: database error: ") and err.count("\n") == 1
    assert "topsecret" not in err


def test_verify_exit_status_from_a_real_process(log: AuditLog) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "policies.audit.cli", "audit", "verify"]
    with log.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 6"))
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "seq 6: edited" in done.stdout and not done.stderr


def test_verify_an_exported_copy(log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("csv", "json"):
        copy = tmp_path / f"copy.{fmt}"
        assert main(["audit", "export", "--format", fmt, "-o", str(copy)]) == 0
        assert main(["audit", "verify", "--file", str(copy)]) == 0
        assert capsys.readouterr().out.strip() == "ok: 6 entries verified (seq 1-6), signed"
        # A filtered copy has gaps by design; its entries still check out one by one.
        part = tmp_path / f"alice.{fmt}"
        assert main(["audit", "export", "--format", fmt, "--actor", "alice", "-o", str(part)]) == 0
        assert main(["audit", "verify", "--file", str(part)]) == 0
        capsys.readouterr()

    text = (tmp_path / "copy.json").read_text()
    forged = tmp_path / "forged.json"
    forged.write_text(text.replace('"actor": "bob"', '"actor": "carol"', 1))
    assert main(["audit", "verify", "--file", str(forged)]) == 1
    assert "seq 1: edited (content does not match its hash)" in capsys.readouterr().out
    rows = (tmp_path / "copy.csv").read_text().splitlines()
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([rows[0], rows[1], rows[3], rows[2], *rows[4:]]) + "\n")
    assert main(["audit", "verify", "--file", str(swapped)]) == 1
    out = capsys.readouterr().out
    assert "seq 2: reordered (after seq 3)" in out and "seq 4: does not chain to seq 3" not in out
    (tmp_path / "junk.json").write_text('{"not": "a log"}')
    assert main(["audit", "verify", "--file", str(tmp_path / "junk.json")]) == 2
    assert capsys.readouterr().err.startswith("cctv-relay audit: not an access-log export (json)")
