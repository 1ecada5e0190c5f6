"""`cctv-relay` command line. Each package registers its own sub-commands:
blur (anonymize), policies (policy, audit, user), relay (serve, demo)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from blur.cli import register as register_blur
from policies.cli import register as register_policies
from relay.commands import register as register_relay


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cctv-relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    register_blur(sub)
    register_policies(sub)
    register_relay(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Each register() sets `func` on its sub-parsers: func(args) -> exit status.
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
