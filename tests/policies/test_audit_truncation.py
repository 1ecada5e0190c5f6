"""Losing the end of the access log is found, on SQLite and PostgreSQL: the newest entries deleted and the
head row moved back or deleted, every entry deleted, and the database's own anchors wiped too (the anchor
file still vouches); an exported copy with an entry taken out of its middle or its end cut off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from policies.audit import AuditLog, read_copy, verify_export
from policies.audit.cli import main
from policies.db import Database

KEY = b"truncation-key"


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("view.start", actor=f"user{i % 3}", camera_id="cam-1", purpose="traffic",
                   decision="allow", details={"i": i})


def sql(db: Database, *statements: str) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def cut_tail(db: Database, keep: int) -> None:
    """What someone with write access to the log's tables does: delete the newest entries and move the
    head row back to the last one kept, so the chain that is left is consistent."""
    sql(db, f"DELETE FROM audit_log WHERE seq > {keep}",
        f"UPDATE audit_head SET seq = {keep}, hash = (SELECT hash FROM audit_log WHERE seq = {keep})")


def wipe_anchor_table(db: Database) -> None:
    """The table refuses deletes: its triggers go first (which the relay's own database role could not do)."""
    if db.is_sqlite:
        sql(db, "DROP TRIGGER audit_anchor_no_delete", "DELETE FROM audit_anchor")
    else:
        sql(db, "DROP TRIGGER audit_anchor_append_only ON audit_anchor", "DELETE FROM audit_anchor")


def test_tail_deleted_and_head_moved_back_is_found(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)  # default anchoring: every 20 entries (and the first)
    fill(log, 45)
    assert log.verify().ok
    with db.engine.connect() as conn:
        anchored = conn.execute(text("SELECT seq, hash FROM audit_anchor ORDER BY id")).all()
    assert [seq for seq, _ in anchored] == [1, 21, 41]
    cut_tail(db, 37)
    result = log.verify()
    assert not result.ok and result.last_seq == 37
    (problem,) = result.problems
    assert problem.startswith("entries after seq 37 (hash ") and "are missing: the anchor of " in problem
    assert problem.endswith(f"(table) vouched for seq 41 (hash {anchored[-1][1][:12]}…)")


def test_head_row_deleted_is_found(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY, anchor_every=5)
    fill(log, 12)
    sql(db, "DELETE FROM audit_log WHERE seq > 6", "DELETE FROM audit_head")
    problems = log.verify().problems
    assert "the head record is missing" in problems
    assert any(p.startswith("entries after seq 6 ") and "vouched for seq 11" in p for p in problems)


def test_every_entry_deleted_is_found(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY, anchor_every=5)
    fill(log, 11)  # anchored at seq 1, 6 and 11
    sql(db, "DELETE FROM audit_log", "DELETE FROM audit_head")
    result = log.verify()
    assert not result.ok and result.checked == 0
    empty = "entries after seq 0 (the log is empty) are missing"
    assert any(p.startswith(empty) and "vouched for seq 11" in p for p in result.problems)


def test_the_anchor_table_only_grows(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    fill(log, 3)
    for statement in ("DELETE FROM audit_anchor", "UPDATE audit_anchor SET seq = 1"):
        with pytest.raises(DBAPIError, match="append-only"):
            sql(db, statement)


def test_a_forged_anchor_is_not_trusted(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY, anchor_every=1)
    fill(log, 4)
    # Rewriting an anchor takes its trigger away first; without the key its signature cannot follow.
    trigger = "audit_anchor_no_update" if db.is_sqlite else "audit_anchor_append_only ON audit_anchor"
    sql(db, f"DROP TRIGGER {trigger}", "UPDATE audit_anchor SET seq = 2 WHERE seq = 4")
    cut_tail(db, 2)
    problems = log.verify().problems
    assert any("for seq 2: edited (signature missing or wrong)" in p for p in problems)
    assert any("vouched for seq 3" in p for p in problems)  # the anchors left still tell


def test_anchor_file_vouches_when_the_database_lost_everything(db: Database, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    anchors = tmp_path / "anchors.jsonl"
    log = AuditLog(db, signing_key=KEY, anchor_file=anchors, anchor_every=4)
    fill(log, 9)
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert [d["seq"] for d in lines] == [1, 5, 9] and all(len(d["signature"]) == 64 for d in lines)
    # Everything in the database goes: entries, head and anchors.
    sql(db, "DELETE FROM audit_log", "DELETE FROM audit_head")
    wipe_anchor_table(db)
    problems = log.verify().problems
    assert problems == ["the head record is missing",
                        "entries after seq 0 (the log is empty) are missing: the anchor of "
                        f"{lines[-1]['ts']} (anchors.jsonl) vouched for seq 9 "
                        f"(hash {lines[-1]['hash'][:12]}…)"]
    # The command line reads the same file, named by the setting.
    monkeypatch.setenv("CCTV_AUDIT_SIGNING_KEY", KEY.decode())
    monkeypatch.setenv("CCTV_AUDIT_ANCHOR_FILE", str(anchors))
    assert main(["audit", "verify", "--database-url", db.url]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 problem(s) in 0 entries" in out and "vouched for seq 9" in out
    # A file anchor written without the key is not believed.
    with anchors.open("a") as f:
        f.write(json.dumps({**lines[-1], "seq": 99}) + "\n")
    assert any("for seq 99: edited" in p for p in log.verify().problems)


def test_anchor_file_is_written_only_for_what_commits(db: Database, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    log = AuditLog(db, signing_key=KEY, anchor_file=anchors, anchor_every=1)
    with pytest.raises(RuntimeError), db.session() as s:
        log.append_in(s, "policy.change", actor="admin")
        raise RuntimeError("the change fails")
    assert not anchors.exists()
    with db.session() as s:
        log.append_in(s, "policy.change", actor="admin")
    assert [json.loads(line)["seq"] for line in anchors.read_text().splitlines()] == [1]
    assert log.verify().ok


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_with_a_middle_entry_deleted_is_found(db: Database, fmt: str) -> None:
    log = AuditLog(db, signing_key=KEY)
    fill(log, 8)
    for filters in ({}, {"actor": "user1"}):  # a filtered copy has gaps by design: its trailer still tells
        copy = "".join(log.export(fmt, **filters))  # type: ignore[arg-type]
        entries, trailer = read_copy(copy, fmt)  # type: ignore[arg-type]
        assert verify_export(entries, KEY, trailer).ok
        gone = entries.pop(len(entries) // 2)
        problems = verify_export(entries, KEY, trailer).problems
        if not filters:
            assert f"seq {gone['seq']}: removed (missing from the export)" in problems
        assert any(p.startswith("entries missing from") for p in problems), problems


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_with_its_end_cut_is_found(db: Database, fmt: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CCTV_AUDIT_SIGNING_KEY", KEY.decode())
    log = AuditLog(db, signing_key=KEY)
    fill(log, 8)
    copy = "".join(log.export(fmt))  # type: ignore[arg-type]
    entries, trailer = read_copy(copy, fmt)  # type: ignore[arg-type]
    # Cut after entry 5: the trailer goes with the end (the rest still parses).
    lines = copy.splitlines(keepends=True)
    cut = json.dumps(json.loads(copy)[:5]) if fmt == "json" else "".join(lines[:6])
    path = tmp_path / f"cut.{fmt}"
    path.write_text(cut)
    assert main(["audit", "verify", "--file", str(path)]) == 1
    assert "the export has no trailer: its end was cut off" in capsys.readouterr().out
    # The end cut but the trailer kept: the trailer says what is missing.
    assert trailer is not None
    problems = verify_export(entries[:5], KEY, trailer).problems
    assert problems == ["entries missing from the export: its trailer lists 8 (seq 1-8, last hash "
                        f"{entries[-1]['hash'][:12]}…), the copy holds 5 (seq 1-5)"]
    # A trailer rewritten to match the cut copy needs the key.
    forged = {**trailer, "count": 5, "last_seq": 5, "last_hash": entries[4]["hash"]}
    assert "the export's trailer: edited (signature missing or does not match)" in \
        verify_export(entries[:5], KEY, forged).problems
