"""The enabled rules' facts, cached for the running-session checks (each viewer's every second)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from policies import engine
from policies.db import Database
from policies.facts import enabled_rules
from policies.models import Rule


class RuleCache:
    """The enabled rules' facts, shared by the running-session checks (each viewer's every second).
    A commit that changes rules in this process drops them at once; changes made elsewhere (another
    worker, the command line, plain SQL) show within `ttl_s`."""

    def __init__(
        self, db: Database, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock
        self._facts: list[engine.RuleFacts] | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._lock = threading.Lock()
        db.on_commit((Rule,), self.invalidate)

    def invalidate(self) -> None:
        with self._lock:
            self._facts = None
            self._generation += 1

    def get(self, s: Session) -> list[engine.RuleFacts]:
        with self._lock:
            if self._facts is not None and self.clock() - self._loaded_at < self.ttl_s:
                return self._facts
            generation = self._generation
        loaded_at = self.clock()
        facts = enabled_rules(s)
        with self._lock:
            if generation == self._generation:  # no change committed while we read: keep them
                self._facts, self._loaded_at = facts, loaded_at
        return facts
