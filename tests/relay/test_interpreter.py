"""The serving process's interpreter settings (relay.interpreter)."""

from __future__ import annotations

import gc
import sys

from relay import interpreter


def test_tune_sets_the_switch_interval_and_freezes_what_startup_built() -> None:
    before = sys.getswitchinterval()
    startup = [object() for _ in range(10)]  # built "at startup", alive
    try:
        interpreter.tune(2.0)
        assert sys.getswitchinterval() == 0.002
        assert gc.get_freeze_count() >= 10
        assert all(o is not startup for o in gc.get_objects())  # frozen: no collection walks it
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)
