"""How the relay turns an exception into text for users and logs."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's message on one line: its first line (for SQLAlchemy errors, the driver's), at most
    `limit` characters; the exception type's name when it has no message."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return " ".join(lines[0].split())[:limit] if lines else type(exc).__name__
