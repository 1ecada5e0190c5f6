"""Live detection: rounds run on a worker thread, so `Anonymizer.process` never waits for the detector.

The scheduler owns that thread and everything about its timing: round pacing (at most `detect_hz` rounds a
second, one at a time), stall detection (a call running past `stall_timeout_s`), result freshness (a result
vouches for frames only if it arrives within `max_carry_s` of its frame, and for at most
`max_result_age_s`), and the detector's errors. From these it says whether a frame must fail closed
(`failure`). What a round looks at and what its result does to the tracks is the anonymizer's business."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import numpy as np

from blur.detectors.base import Detector, empty_boxes
from blur.failsafe import FailReason, Failure
from blur.planes import rgb_of
from blur.profiles import AnonymizerConfig
from blur.rounds import Regions, detect_round


@dataclass
class Job:
    frame: int
    captured: float
    planes: list[np.ndarray]       # [Y, U, V] copies, or [BGR]
    small: np.ndarray              # grey copy at the detection frame, for carrying results forward
    regions: Regions | None        # None: whole frame
    generation: int
    first: bool = False            # the engine's first round


@dataclass
class Result:
    job: Job
    dets: np.ndarray
    failure: Failure | None
    ms: float


class LiveScheduler:
    def __init__(self, config: AnonymizerConfig, detector: Detector | None) -> None:
        self.config = config
        self._detector = detector
        # Shared with the worker thread, guarded by self._lock.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._generation = 0           # bumped to abandon a worker (stuck in a replaced detector, or closed)
        self._job: Job | None = None   # the round submitted and not yet finished
        self._job_started = 0.0
        self._taken: tuple[int, int] | None = None  # (generation, frame) of the job a worker picked up
        self._result: Result | None = None          # the newest finished round, not yet collected
        self._closed = False
        self._worker: threading.Thread | None = None
        # The processing thread's own.
        self._last_submit = -1e9
        self._last_fresh: float | None = None   # capture time of the newest applied detection
        self._failure: Failure | None = None    # the detector's error, until a round succeeds
        self._busy_since: float | None = None   # when the round running at the last `round_due` began
        with self._lock:
            self._start_worker_locked()

    # ------------------------------------------------------------------ processing thread
    def collect(self, now: float) -> Result | None:
        """The round finished since the last call, if any. A failed one fails frames closed until a round
        succeeds; a successful one vouches for frames if it arrived within `max_carry_s` of its frame
        (older results still update the tracks, but do not count as fresh)."""
        with self._lock:
            result, self._result = self._result, None
        if result is None:
            return None
        if result.failure is not None:
            self._failure = result.failure
        else:
            self._failure = None
            if now - result.job.captured <= self.config.max_carry_s:
                self._last_fresh = result.job.captured
        return result

    def round_due(self, now: float) -> bool:
        """Whether the worker is idle and the next round is due (at most `detect_hz` a second). Also notes
        whether a round is running, for this frame's `failure`."""
        with self._lock:
            busy = self._job is not None
            self._busy_since = self._job_started if busy else None
        return not busy and now - self._last_submit >= 1.0 / max(self.config.detect_hz, 1e-3)

    @property
    def has_fresh(self) -> bool:
        """Whether any result has vouched for a frame yet."""
        return self._last_fresh is not None

    def nothing_moved(self, now: float) -> None:
        """The round due now had nothing to look at: the tracks stand, and count as fresh."""
        self._last_fresh = now
        self._last_submit = now

    def submit(self, now: float, frame: int, planes: list[np.ndarray], small: np.ndarray,
               regions: Regions | None, first: bool) -> None:
        """Hand the worker a round on copies of this frame's planes."""
        with self._lock:
            self._job = Job(frame, now, [p.copy() for p in planes], small, regions, self._generation,
                            first=first)
            self._job_started = now
            self._last_submit = now
            self._wake.notify_all()

    def failure(self, now: float) -> Failure | None:
        """Why this frame must fail closed, if it must (checked after `collect` and `round_due`)."""
        cfg = self.config
        if self._failure is not None:
            return self._failure
        if self._busy_since is not None and now - self._busy_since > cfg.stall_timeout_s:
            return Failure(FailReason.DETECTOR_STALLED)
        if self._last_fresh is None:
            return Failure(FailReason.AWAITING_FIRST_DETECTION)
        if now - self._last_fresh > cfg.max_result_age_s:
            return Failure(FailReason.BEHIND_BUDGET)
        return None

    # ------------------------------------------------------------------ any thread
    def replace_detector(self, detector: Detector | None) -> None:
        """Swap the detector. A worker stuck in the old detector is abandoned and a new one started."""
        with self._lock:
            self._detector = detector
            self._failure = None
            if self._job is not None:
                self._generation += 1
                self._job = None
                self._start_worker_locked()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._generation += 1
            self._wake.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2.0)  # a stalled detector may never return; it is a daemon thread

    # ------------------------------------------------------------------ worker thread
    def _start_worker_locked(self) -> None:
        gen = self._generation
        self._worker = threading.Thread(target=self._work, args=(gen,), name="blur-detect", daemon=True)
        self._worker.start()

    def _work(self, generation: int) -> None:
        with self._lock:
            detector = self._detector
        if detector is not None:
            # The first inference of a session is several times slower: pay it before frames wait on it.
            # A broken detector reports itself on the first real job.
            with contextlib.suppress(Exception):
                detector.detect(np.zeros((64, 64, 3), np.uint8))
        while True:
            with self._lock:
                while (not self._closed and generation == self._generation
                       and (self._job is None or self._job_taken(generation))):
                    self._wake.wait(0.5)
                if self._closed or generation != self._generation:
                    return
                job = self._job
                detector = self._detector
                self._taken = (generation, job.frame)
            t = time.perf_counter()
            failure = None
            dets = empty_boxes()
            try:
                dets = (detect_round(detector, rgb_of(job.planes), job.regions, self.config, job.first)
                        if detector else empty_boxes())
            except Exception as exc:
                failure = Failure.detector_error(exc)
            with self._lock:
                if generation != self._generation:
                    return
                self._result = Result(job, dets, failure, (time.perf_counter() - t) * 1000)
                self._job = None

    def _job_taken(self, generation: int) -> bool:
        return self._job is not None and self._taken == (generation, self._job.frame)
