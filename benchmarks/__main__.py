"""`python -m benchmarks [NAME ...]` (what `make bench` runs): every benchmark module, in turn.

A benchmark is a module of this package that runs as a script (`if __name__ == "__main__":`); helpers such as
`common` and `videogen` are not. Each runs in its own process, so one benchmark's settings (the cost
benchmark pins itself to one core) cannot leak into the next, and one failing does not stop the rest.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {available})"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")

    failed: list[str] = []
    for name in args.names or available:
        print(f"== {name}", flush=True)
        start = time.monotonic()
        status = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=HERE.parent).returncode
        print(
            f"== {name}: {'ok' if status == 0 else f'FAILED ({status})'} in {time.monotonic() - start:.0f} s"
        )
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
