"""The sample camera over RTSP: GStreamer's gst-rtsp-server looping an H.264 Annex B file like a live camera.

The server (`rtsp_server.py`, beside this file, shipped in the package) runs as a subprocess of Debian's
/usr/bin/python3, which has python3-gi; the relay's own environment needs no GStreamer. `RtspServer` is the
one launcher: `cctv-relay demo`, the benchmarks and the tests all start the camera through it.

    with RtspServer(clip, path="/street") as camera:
        camera.url  # rtsp://127.0.0.1:PORT/street

The server binds the port itself (port 0: any free one) and reports it on its READY line, so no port is
picked first and bound later by someone else. `restart()` brings it back on the port it had."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's, with python3-gi for GStreamer
_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import GstRtspServer")


class SampleCameraError(RuntimeError):
    """The RTSP sample camera did not start (one line saying why)."""


def rtsp_available(python: Path = SYSTEM_PYTHON) -> bool:
    """Whether `python` has gi and GstRtspServer (and the server script is installed)."""
    if not (python.exists() and SERVER_SCRIPT.exists()):
        return False
    try:
        result = subprocess.run([str(python), "-c", _PROBE], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class RtspServer:
    """`file` (.h264, Annex B) served at rtsp://127.0.0.1:PORT`path`, looped at `fps`, by a subprocess.

    `port` 0 lets the server pick; after `start()` it holds the port bound, which `restart()` reuses.
    `user`/`password` turn on basic auth. The server's stderr goes to `log` (a file path) or nowhere; its
    stdout is read for the READY line and drained afterwards, so a chatty GStreamer never blocks it."""

    def __init__(self, file: Path, *, port: int = 0, path: str = "/cam", fps: int = 25,
                 user: str | None = None, password: str | None = None, log: Path | None = None,
                 python: Path = SYSTEM_PYTHON) -> None:
        self.file = Path(file)
        self.port = port
        self.path = path
        self.fps = fps
        self.user, self.password = user, password
        self.log = log
        self.python = python
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def command(self) -> list[str]:
        cmd = [str(self.python), str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path,
               "--file", str(self.file), "--fps", str(self.fps)]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or ""]
        return cmd

    def start(self, timeout: float = 20.0) -> str:
        """Start the server and wait (at most `timeout` s) for it to listen; its URL.
        Raises SampleCameraError if it exits, says ERROR, or prints no READY line in time."""
        if self.proc is not None and self.proc.poll() is None:
            raise SampleCameraError("the RTSP sample camera is already running")
        env = {**os.environ}
        env.setdefault("GST_DEBUG", "0")
        errors: IO[str] | int = open(self.log, "a") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        except OSError as exc:
            raise SampleCameraError(f"cannot run {self.python}: {exc}") from exc
        finally:
            if not isinstance(errors, int):
                errors.close()  # the child has its own copy
        self.proc = proc
        first: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_stdout, args=(proc, first), name="rtsp-sample-stdout",
                         daemon=True).start()
        try:
            line = first.get(timeout=timeout)
        except queue.Empty:
            self._end(proc, abrupt=True)
            raise SampleCameraError(f"the RTSP sample camera printed no READY line within {timeout:g} s") \
                from None
        if not line.startswith("READY "):
            self._end(proc, abrupt=True)
            said = line or f"exited with status {proc.returncode}"
            where = f" (see {self.log})" if self.log is not None else ""
            raise SampleCameraError(f"the RTSP sample camera did not start: {said}{where}")
        self.url = line.split(" ", 1)[1]
        self.port = urlsplit(self.url).port or self.port
        return self.url

    def url_with_credentials(self) -> str:
        return self.url.replace("rtsp://", f"rtsp://{self.user}:{self.password}@", 1)

    def stop(self) -> None:
        """SIGTERM (the server leaves its loop), SIGKILL if it is still there after 5 s."""
        if self.proc is not None:
            self._end(self.proc, abrupt=False)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the camera just vanishes (as one losing power does)."""
        if self.proc is not None:
            self._end(self.proc, abrupt=True)
        self.proc = None

    def restart(self, attempts: int = 50) -> str:
        """Stop it and start it again on the same port (which may linger a moment after the stop)."""
        self.stop()
        last: SampleCameraError | None = None
        for _ in range(attempts):
            try:
                return self.start()
            except SampleCameraError as exc:
                last = exc
                threading.Event().wait(0.2)
        raise SampleCameraError(f"the RTSP sample camera did not come back on port {self.port}: {last}")

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @staticmethod
    def _end(proc: subprocess.Popen[str], *, abrupt: bool) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if abrupt else signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read_stdout(proc: subprocess.Popen[str], first: queue.Queue[str]) -> None:
    """Hand the READY or ERROR line (or "" at EOF) to `first`, then drain stdout until the server exits."""
    assert proc.stdout is not None
    told = False
    with proc.stdout:
        for line in proc.stdout:
            if not told and line.startswith(("READY ", "ERROR ")):
                first.put(line.strip())
                told = True
    if not told:
        proc.wait()
        first.put("")
