"""A file through the engine on more than one core: decode | engine | encode, each stage on its own thread.

The source (decoding) is iterated on a reader thread, the step (the engine) runs on the calling thread, and
the sink (encoding) on a writer thread, with a few items queued between them. PyAV's decoder and encoder,
OpenCV and onnxruntime release the GIL while they work, so the three overlap. Nothing about the result
depends on the threads: the engine sees every frame in order, on one thread, exactly as a plain loop would
give them, and the sink gets its results in that order; the same input gives the same output at any speed.

Errors: the first failure of any stage stops all three and is raised on the calling thread once every stage
has stopped (so the caller may then close or remove what the stages were using). Failures come out as a
plain loop would meet them: the items before a source or step failure still go through the step and the
sink, so a sink failure on an earlier item is the one raised. A KeyboardInterrupt (delivered to the calling
thread) stops all three at once and wins over everything else.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

DEPTH = 12         # items queued between two stages: enough to ride out an uneven frame, little memory
_POLL_S = 0.05     # how often a waiting stage looks whether another one has failed
_END = object()


class _Stopped(Exception):
    """Another stage failed: this one gives up where it waits."""


class _SourceError:
    """A source failure, queued in order behind the items read before it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Pipe:
    """A bounded queue whose put and get give up when the pipeline stops."""

    def __init__(self, depth: int, stop: threading.Event) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(max(1, depth))
        self._stop = stop

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        raise _Stopped


def run_pipeline(source: Iterable[T], step: Callable[[T], U], sink: Callable[[U], None],
                 depth: int = DEPTH) -> int:
    """Feed every item of `source` (iterated on a reader thread) through `step` (on this thread) into `sink`
    (on a writer thread), in order. Returns the number of items that went through; raises the first failure
    (see the module's docstring) after all three stages have stopped."""
    stop = threading.Event()
    inbox, outbox = _Pipe(depth, stop), _Pipe(depth, stop)
    sink_error: list[BaseException] = []

    def read() -> None:
        items = iter(source)
        try:
            for item in items:
                inbox.put(item)
            inbox.put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the calling thread, in order
            with contextlib.suppress(_Stopped):
                inbox.put(_SourceError(exc))
        finally:
            close = getattr(items, "close", None)  # a generator: its clean-up runs here, not later
            if close is not None:
                close()

    def write() -> None:
        try:
            while (item := outbox.get()) is not _END:
                sink(item)
        except _Stopped:
            pass
        except BaseException as exc:  # raised on the calling thread
            sink_error.append(exc)
            stop.set()

    threads = [threading.Thread(target=read, name="file-decode", daemon=True),
               threading.Thread(target=write, name="file-encode", daemon=True)]
    for thread in threads:
        thread.start()
    count = 0
    error: BaseException | None = None
    try:
        try:
            while (item := inbox.get()) is not _END:
                if isinstance(item, _SourceError):
                    raise item.exc
                outbox.put(step(item))
                count += 1
        except (_Stopped, KeyboardInterrupt):
            raise
        except BaseException as exc:  # re-raised once the other stages have stopped
            error = exc
        # The sink takes what came before (a failure): a plain loop would have, and could have failed on it.
        outbox.put(_END)
        while threads[1].is_alive():  # until the sink has taken everything (or failed)
            threads[1].join(_POLL_S)
    except _Stopped:
        pass
    except BaseException as exc:  # a KeyboardInterrupt: stop at once
        error = exc
    finally:
        stop.set()
        for thread in threads:
            _join(thread)
    if isinstance(error, KeyboardInterrupt):
        raise error
    if sink_error:
        raise sink_error[0]  # the sink only ever gets items from before the step's failure
    if error is not None:
        raise error
    return count


def _join(thread: threading.Thread) -> None:
    """Wait for a stage to stop (it does within one item once stopped); a further Ctrl-C does not cut the
    wait short, so nothing the stage uses is closed under it."""
    while thread.is_alive():
        try:
            thread.join(_POLL_S)
        except KeyboardInterrupt:
            continue
