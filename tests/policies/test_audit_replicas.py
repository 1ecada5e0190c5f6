"""One access log for many relay processes: appends from several processes at once (as replicas write
theirs) stay one chain, serialized by PostgreSQL's advisory lock, and verify."""

from __future__ import annotations

import itertools
import multiprocessing

from policies.audit import AuditLog
from policies.db import Database

PROCESSES, EACH = 4, 40


def _append_many(url: str, replica: str) -> None:
    db = Database(url)
    log = AuditLog(db, signing_key="replicas-signing-key")
    for i in range(EACH):
        log.append("view.end", actor=f"user-{replica}", reason="relay draining",
                   details={"replica": replica, "i": i})
    db.dispose()


def test_appends_from_many_processes_make_one_chain(make_pg_database) -> None:  # type: ignore[no-untyped-def]
    url = make_pg_database()
    db = Database(url)
    db.create_all()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(url, f"relay-{i}")) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = AuditLog(db, signing_key="replicas-signing-key")
    result = log.verify()
    assert result.ok, result.problems
    assert result.checked == PROCESSES * EACH
    entries = log.query(limit=10_000)
    assert [e.seq for e in sorted(entries, key=lambda e: e.seq)] == list(range(1, PROCESSES * EACH + 1))
    # Interleaved: the processes really wrote at the same time.
    writers = [e.details["replica"] for e in sorted(entries, key=lambda e: e.seq)]
    assert sum(a != b for a, b in itertools.pairwise(writers)) > PROCESSES
    db.dispose()
