"""Process-wide interpreter settings of a long-running relay, applied once the app is built.

Both serve viewers joining while camera pipelines run in the same process:

- GIL switch interval (`gil_switch_ms`, Python's default 5 ms): the pipelines' Python steps hold the GIL;
  every database round trip and socket read of a request waits up to that long to get it back, about ten
  of them in a WHEP join.
- `gc.freeze()` after startup: what was built to start (modules, models, the app) is moved out of the
  collector's reach. A full collection otherwise walks all of it and stopped the event loop for 110 ms,
  once every few minutes under viewers' churn: a join that met it took twice as long."""

from __future__ import annotations

import gc
import sys


def tune(gil_switch_ms: float) -> None:
    sys.setswitchinterval(gil_switch_ms / 1000)
    gc.collect()  # what startup left as garbage is collected, not frozen
    gc.freeze()
