"""A real TURN server for tests: Debian's coturn (`turnserver`) on loopback, taking coturn's shared-secret
REST credentials (`use-auth-secret`), no TLS, no CLI, relaying between loopback peers; its log in a file
the test reads (allocations are logged with their username)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "relay.test"


def _free_port() -> int:
    """A port free for both UDP and TCP on loopback (coturn listens on both)."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for coturn")


class Coturn:
    """`with Coturn(tmp, secret) as turn:` → `turn.urls`, `turn.log()`."""

    def __init__(self, workdir: Path, secret: str) -> None:
        self.workdir = workdir
        self.secret = secret
        self.port = _free_port()
        self.log_file = workdir / "turnserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> list[str]:
        return [f"turn:127.0.0.1:{self.port}?transport=udp", f"turn:127.0.0.1:{self.port}?transport=tcp"]

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def __enter__(self) -> Coturn:
        low = random.randrange(20000, 60000, 500)  # relay ports of its own, away from other tests' servers
        conf = self.workdir / "turnserver.conf"
        conf.write_text("\n".join([
            "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={self.port}",
            f"min-port={low}", f"max-port={low + 499}",
            "use-auth-secret", f"static-auth-secret={self.secret}", f"realm={REALM}",
            "fingerprint", "no-tls", "no-dtls", "no-cli", "no-multicast-peers", "allow-loopback-peers",
            "verbose", f"log-file={self.log_file}", "simple-log", "no-stdout-log",
            f"pidfile={self.workdir / 'turnserver.pid'}", f"userdb={self.workdir / 'turndb'}",
        ]) + "\n")
        self.proc = subprocess.Popen([TURNSERVER, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + 20
        while True:  # up once it takes TCP connections on its port
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited ({self.proc.returncode}): {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("turnserver did not start") from None
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
