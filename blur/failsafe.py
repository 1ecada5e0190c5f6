"""Why a frame leaves masked whole: the engine's fail-closed reasons, in one place.

`FrameReport.reason` carries the text (`detector error: RuntimeError: ...`, `detector stalled`, ...), which
the relay logs and tests compare; `FrameReport.cause` the `FailReason` alone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_MAX_TEXT = 200  # a report's reason is one short line, whatever the detector's exception said


class FailReason(StrEnum):
    DETECTOR_ERROR = "detector error"                      # the detector raised (until a round succeeds)
    DETECTOR_STALLED = "detector stalled"                  # live: a call has run past stall_timeout_s
    BEHIND_BUDGET = "behind budget"                        # live: newest fresh result older than
                                                           # max_result_age_s; offline: over frame_budget_ms
    AWAITING_FIRST_DETECTION = "awaiting first detection"  # live: no result has arrived yet
    SCENE_CHANGED = "scene changed"                        # video: most of the picture changed at once
    MOTION_WARMING_UP = "motion warming up"                # video: the background model has seen too few
                                                           # frames to show what moves


@dataclass(frozen=True)
class Failure:
    cause: FailReason
    detail: str = ""  # what the detector raised, for DETECTOR_ERROR

    @classmethod
    def detector_error(cls, exc: BaseException) -> Failure:
        return cls(FailReason.DETECTOR_ERROR, f"{type(exc).__name__}: {exc}")

    @property
    def text(self) -> str:
        return (f"{self.cause}: {self.detail}" if self.detail else str(self.cause))[:_MAX_TEXT]
