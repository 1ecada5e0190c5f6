"""Who a local token names, and when it stops naming them.

A token's subject is the user's `uid` (random, never reused: SQLite hands a deleted row's id to the next
user created) and it carries the user's `token_epoch`. Any change of a user's roles, password or active
flag moves the epoch, in the flush that makes the change, however it is made (admin API, grant approval,
policy import, command line, single sign-on): tokens issued before it stop authenticating."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from policies.models import User

# Set in a unit of work's `session.info` when a password hash changes without the password changing
# (a rehash with newer parameters at login): the person's tokens stay valid.
SAME_CREDENTIALS = "same_credentials"
CREDENTIAL_FIELDS = ("roles", "active", "password_hash")


def credentials_changed(user: User, *, password: bool = True) -> bool:
    state = inspect(user)
    fields = CREDENTIAL_FIELDS if password else CREDENTIAL_FIELDS[:2]
    return any(state.attrs[name].history.has_changes() for name in fields)


def _bump(session: Session, _context: Any, _instances: Any) -> None:
    password = not session.info.get(SAME_CREDENTIALS, False)
    for obj in session.dirty:
        if isinstance(obj, User) and credentials_changed(obj, password=password):
            obj.token_epoch = (obj.token_epoch or 0) + 1


def track_credential_changes(sessions: sessionmaker[Session]) -> None:
    """Move a user's token epoch whenever a unit of work of `sessions` changes their credentials."""
    event.listen(sessions, "before_flush", _bump)
