"""The access log is tamper-evident on SQLite and PostgreSQL: edits, removals, reorderings and forged
hashes are found and located; concurrent writers (threads and processes) never leave gaps; a writer
killed with SIGKILL mid-append leaves a log that still verifies and still appends; retention keeps the
retained chain verifiable."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from policies.audit import AuditError, AuditLog, entry_hash, read_copy
from policies.db import Database

ROOT = Path(__file__).resolve().parents[2]
KEY = b"test-signing-key"


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("view.request", actor=f"user{i % 3}", roles=["operator"], camera_id=f"cam-{i % 2}",
                   purpose="traffic", mode="anonymized", decision="allow" if i % 4 else "deny",
                   reason=f"rule r{i}", details={"i": i, "ratio": i / 7, "name": "大安區"})


def sql(db: Database, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_chain_verifies_and_links(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    result = log.verify()
    assert result.ok and result.checked == 6 and (result.first_seq, result.last_seq) == (1, 6)
    entries = log.query()
    assert [e.seq for e in entries] == list(range(1, 7))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[3].details == {"i": 3, "ratio": 3 / 7, "name": "大安區"}
    assert entries[0].ts.tzinfo is not None


def test_edited_field_is_found(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    sql(db, "UPDATE audit_log SET decision = 'allow' WHERE seq = 5")
    result = log.verify()
    assert not result.ok
    assert result.problems == ["seq 5: edited (content does not match its hash)"]


def test_removed_entries_are_found(db: Database) -> None:
    log = AuditLog(db)
    log.page_size = 3  # the check carries across pages
    fill(log, 8)
    sql(db, "DELETE FROM audit_log WHERE seq IN (3, 4)")
    sql(db, "DELETE FROM audit_log WHERE seq = 8")  # the newest one: only the head record remembers it
    result = log.verify()
    assert result.problems == ["seq 3-4: removed", "seq 8: removed (the log ends at seq 7)"]


def test_reordered_entries_are_found(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 6)
    # Swap entries 2 and 3 (seq is the key, so move one aside first).
    sql(db, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    sql(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    sql(db, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    result = log.verify()
    assert result.problems == ["seq 2: reordered (was written after seq 3)",
                               "seq 3: reordered (was written after seq 1)"]


def _rehash_from(db: Database, seq: int, key: bytes | None = None) -> None:
    """What a forger without the signing key can do: recompute the chain from `seq` on."""
    import hashlib
    import hmac

    with db.engine.begin() as conn:
        rows = [dict(r) for r in conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings()]
        prev = next(r["hash"] for r in rows if r["seq"] == seq - 1) if seq > 1 else "0" * 64
        for row in rows:
            if row["seq"] < seq:
                continue
            if isinstance(row["roles"], str):
                row["roles"], row["details"] = json.loads(row["roles"]), json.loads(row["details"])
            if isinstance(row["ts"], str):
                row["ts"] = dt.datetime.fromisoformat(row["ts"])
            digest = entry_hash(row, prev)
            sig = hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else row["signature"]
            update = "UPDATE audit_log SET prev_hash = :p, hash = :h, signature = :s WHERE seq = :q"
            conn.execute(text(update), {"p": prev, "h": digest, "s": sig, "q": row["seq"]})
            prev = digest
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})


def test_forged_hash_without_key_is_found_when_signed(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    fill(log, 5)
    assert log.verify().ok and log.verify().signed
    sql(db, "UPDATE audit_log SET actor = 'someone_else' WHERE seq = 3")
    _rehash_from(db, 3, key=b"guessed-key")
    result = log.verify()
    assert "seq 3: edited (signature does not match)" in result.problems
    assert all(p.startswith(("seq 3", "seq 4", "seq 5")) for p in result.problems)
    # The same forgery against an unsigned log is consistent by construction: that is what the key is for.
    assert AuditLog(db).verify().ok


def test_unsigned_forged_middle_entry_breaks_the_next_link(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 5)
    sql(db, "UPDATE audit_log SET reason = 'forged' WHERE seq = 2")
    with db.engine.begin() as conn:
        row = dict(conn.execute(text("SELECT * FROM audit_log WHERE seq = 2")).mappings().one())
        if isinstance(row["roles"], str):
            row["roles"], row["details"] = json.loads(row["roles"]), json.loads(row["details"])
            row["ts"] = dt.datetime.fromisoformat(row["ts"])
        conn.execute(text("UPDATE audit_log SET hash = :h WHERE seq = 2"),
                     {"h": entry_hash(row, row["prev_hash"])})
    expected = "seq 2: edited (its hash was rewritten; seq 3 chains to a different one)"
    assert log.verify().problems == [expected]


def test_signature_stripped_is_found(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    fill(log, 3)
    sql(db, "UPDATE audit_log SET signature = NULL WHERE seq = 2")
    assert log.verify().problems == ["seq 2: edited (signature missing)"]


def test_threads_append_without_gaps(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                log.append("view.start", actor=f"t{n}", details={"i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [e.seq for e in log.query()] == list(range(1, 61))
    assert log.verify().ok


WRITER = """
import sys
from policies.audit import AuditLog
from policies.db import Database
log = AuditLog(Database(sys.argv[1]), signing_key=b"test-signing-key")
for i in range(int(sys.argv[3])):
    e = log.append("view.start", actor=sys.argv[2], camera_id="cam-1", details={"i": i, "pad": "x" * 200})
    print(e.seq, flush=True)
"""


def _writer(url: str, name: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(count)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def test_processes_append_without_gaps(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    procs = [_writer(db.url, f"worker{n}", 20) for n in range(2)]
    # Verifying while they write reads one consistent snapshot: never a false alarm.
    while any(p.poll() is None for p in procs):
        result = log.verify()
        assert result.ok, result.problems
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    entries = log.query()
    assert [e.seq for e in entries] == list(range(1, 41))
    assert {e.actor for e in entries} == {"worker0", "worker1"}
    assert log.verify().ok


def test_kill_9_mid_write_leaves_a_verifiable_log(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    log.append("audit.test", actor="before")
    proc = _writer(db.url, "victim", 1_000_000)
    assert proc.stdout is not None
    for _ in range(30):  # let it get well into its loop, then kill it wherever it is
        assert proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # The process is gone, but a COMMIT it sent just before dying may still be running on a PostgreSQL
    # server. Its transaction holds the log's lock until it ends: taking the lock waits for that.
    with log._locked():
        pass
    result = log.verify()
    assert result.ok, result.problems
    assert result.checked >= 31
    after = log.append("audit.test", actor="after")
    assert after.seq == result.checked + 1
    assert log.verify().ok


def test_retention_keeps_the_chain_verifiable(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY, retention_days=30)
    fill(log, 5)
    entries = log.query()
    assert not log.retention_due()
    # Pretend it is 30 days after entry 4 was written: entries 1-3 are past retention.
    later = entries[3].ts + dt.timedelta(days=30)
    assert log.retention_due(now=later)
    removed = log.apply_retention(now=later)
    assert not log.retention_due(now=later)
    assert removed == 3
    kept = log.query()
    assert [e.seq for e in kept] == [4, 5, 6]
    assert kept[-1].kind == "audit.retention"
    assert kept[-1].details["checkpoint_seq"] == 3 and kept[-1].details["removed"] == 3
    assert log.verify().ok and log.verify().first_seq == 4
    fill(log, 2)
    # A second round: everything before it goes, including the first retention entry.
    assert log.apply_retention(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=31)) == 5
    result = log.verify()
    assert result.ok, result.problems
    assert result.first_seq == 9 and result.checked == 1
    assert log.append("view.start", actor="after").seq == 10
    assert log.verify().ok
    assert log.apply_retention() == 0  # nothing is old now


def test_retention_checkpoint_cannot_be_moved(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY, retention_days=30)
    fill(log, 6)
    log.apply_retention(now=log.query()[2].ts + dt.timedelta(days=30))  # removes 1-2
    # Hiding entry 3 behind a moved checkpoint is noticed: the chain never recorded that checkpoint.
    with db.engine.begin() as conn:
        h3 = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 3")).scalar_one()
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        conn.execute(text("UPDATE audit_checkpoint SET seq = 3, hash = :h"), {"h": h3})
    problems = log.verify().problems
    assert "checkpoint at seq 3: edited (signature does not match)" in problems
    assert "checkpoint at seq 3: not recorded by any audit.retention entry" in problems


def test_query_filters_and_pages(db: Database) -> None:
    log = AuditLog(db)
    fill(log, 12)
    log.append("auth.fail", actor="mallory", decision="deny", reason="wrong password")
    assert [e.seq for e in log.query(actor="user1")] == [2, 5, 8, 11]
    assert [e.seq for e in log.query(camera_id="cam-0", decision="deny")] == [1, 5, 9]
    assert [e.seq for e in log.query(kind="auth")] == [13]
    assert [e.seq for e in log.query(kind="view.request", limit=3, offset=3)] == [4, 5, 6]
    assert log.count(decision="deny") == 4
    first = log.query()[0].ts
    assert len(log.query(since=first + dt.timedelta(days=1))) == 0
    assert len(log.query(until=first + dt.timedelta(days=1))) == 13
    with pytest.raises(AuditError, match="unknown audit filter"):
        log.query(user="x")
    with pytest.raises(AuditError, match="decision"):
        log.append("view.request", actor="x", decision="maybe")


def test_export_csv_and_json(db: Database) -> None:
    log = AuditLog(db, signing_key=KEY)
    log.page_size = 40  # several pages
    fill(log, 210)  # and more than one CSV chunk
    rows = list(csv.DictReader(io.StringIO("".join(log.export("csv")))))
    assert len(rows) == 211  # and the trailer
    assert rows[0]["seq"] == "1" and rows[0]["roles"] == "operator" and rows[0]["decision"] == "deny"
    assert json.loads(rows[7]["details"]) == {"i": 7, "name": "大安區", "ratio": 1.0}
    assert rows[1]["prev_hash"] == rows[0]["hash"] and len(rows[0]["signature"]) == 64
    trailer = json.loads(rows[-1]["details"])
    assert rows[-1]["seq"] == "trailer" and (trailer["count"], trailer["last_seq"]) == (210, 210)
    doc = json.loads("".join(log.export("json", actor="user2")))
    assert [d.get("seq") for d in doc][:3] == [3, 6, 9] and len(doc) == 71
    assert doc[0]["ts"].endswith("Z") and doc[0]["details"]["name"] == "大安區"
    assert doc[-1]["trailer"]["filters"] == {"actor": "user2"} and doc[-1]["trailer"]["count"] == 70
    entries, trailer = read_copy("".join(log.export("json", actor="nobody")), "json")
    assert entries == [] and trailer is not None and trailer["count"] == 0
    with pytest.raises(AuditError, match="csv or json"):
        log.export("xml")


def test_append_in_commits_and_rolls_back_with_the_change(db: Database) -> None:
    from policies.models import Camera

    log = AuditLog(db, signing_key=KEY)
    log.append("audit.test", actor="before")
    with db.session() as s:
        s.add(Camera(id="cam-9", name="Beimen"))
        log.append_in(s, "camera.change", actor="admin", camera_id="cam-9",
                      details={"after": {"name": "Beimen"}})
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Camera(id="cam-10", name="never"))
        log.append_in(s, "camera.change", actor="admin", camera_id="cam-10")
        raise RuntimeError("the change fails after it was logged")
    assert [(e.seq, e.camera_id) for e in log.query(kind="camera")] == [(2, "cam-9")]
    assert log.append("audit.test", actor="after").seq == 3
    assert log.verify().ok


def test_oversized_fields_are_cut_not_lost(db: Database) -> None:
    log = AuditLog(db)
    entry = log.append("view.request", actor="x" * 300, camera_id="c" * 100, purpose="p" * 100, mode="m" * 40,
                       decision="deny", reason="unknown camera")
    assert (len(entry.actor), len(entry.camera_id or ""), len(entry.mode or "")) == (128, 64, 16)
    odd = log.append("auth.fail", actor="eve\x00", reason="bad\x00", details={
        "nan": float("nan"), "when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), 7: ("a", {"b"}), "k\x00": None})
    assert odd.actor == "eve\ufffd" and odd.reason == "bad\ufffd"
    assert log.query(kind="auth.fail")[0].details == {"nan": "nan", "when": "2026-01-02 00:00:00+00:00",
                                                      "7": ["a", ["b"]], "k\ufffd": None}
    assert log.verify().ok


def test_monthly_counts_follow_the_time_zone(db: Database) -> None:
    from sqlalchemy import insert

    from policies.models import AuditEntry

    log = AuditLog(db)
    # 2026-01-31 20:00 UTC is already February in Taipei (UTC+8). Counting ignores the chain, so rows
    # are written directly with the times wanted.
    rows = [dt.datetime(2026, 1, 31, 20, 0, tzinfo=dt.UTC), dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)]
    with db.engine.begin() as conn:
        for n, ts in enumerate(rows, 1):
            conn.execute(insert(AuditEntry).values(seq=n, ts=ts, kind="view.start", actor="a", roles=[],
                                                   camera_id="cam-1", purpose="traffic", details={},
                                                   prev_hash="0" * 64, hash=f"{n:064d}"))
    def months(tz: str) -> list[tuple[str, int]]:
        return [(r["month"], r["count"]) for r in log.monthly_counts(by=(), tz=tz)]

    assert months("UTC") == [("2026-01", 2)]
    assert months("Asia/Taipei") == [("2026-01", 1), ("2026-02", 1)]
    with pytest.raises(AuditError, match="time zone"):
        log.monthly_counts(tz="Mars/Olympus")
    with pytest.raises(AuditError, match="cannot group by"):
        log.monthly_counts(by=("details",))
