"""The service's background jobs: access-log retention runs when the app starts (then daily) and logs what
it removed, leaving a chain that still verifies."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import pytest
from sqlalchemy import update

from policies.context import build_context
from policies.models import AuditEntry
from relay.app import create_app
from relay.config import load_settings


async def test_retention_runs_at_start_and_logs_what_it_removed(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'relay.db'}", token_secret="t" * 40,
                             retention_days=30)
    ctx = build_context(settings)
    old = ctx.audit.append("auth.fail", actor="someone", decision="deny", reason="long ago")
    ctx.audit.append("auth.fail", actor="someone", decision="deny", reason="last week")
    with ctx.db.engine.begin() as conn:  # the first entry was written 60 days ago
        conn.execute(update(AuditEntry).where(AuditEntry.seq == old.seq)
                     .values(ts=dt.datetime.now(dt.UTC) - dt.timedelta(days=60)))
    assert ctx.audit.retention_due()
    caplog.set_level(logging.INFO, logger="relay.housekeeping")
    app = create_app(settings, context=ctx)
    try:
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if ctx.audit.query(kind="audit.retention"):
                    break
                await asyncio.sleep(0.1)
        (entry,) = ctx.audit.query(kind="audit.retention")
        assert entry.details["removed"] == 1
        assert [e.reason for e in ctx.audit.query(kind="auth.fail")] == ["last week"]
        assert not ctx.audit.retention_due()
        assert ctx.audit.verify().ok
        assert "removed 1 entries older than 30 days" in caplog.text
    finally:
        ctx.db.dispose()
