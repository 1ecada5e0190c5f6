"""Camera credentials: `${NAME}` references resolved from the environment (only CAM_*/CAMERA_* names, so a
camera URL cannot carry the relay's own secrets to the host it names), and URLs redacted for screens."""

from __future__ import annotations

import os
import re
import urllib.parse

from policies.contract import PolicyError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Camera credentials may only name variables meant for them: a camera URL must not be able to carry
# the relay's own secrets (token key, audit key) to whatever host it points at.
CAMERA_ENV_NAME = re.compile(r"^CAM(ERA)?_[A-Za-z0-9_]+$")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and screens."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = urllib.parse.quote(parts.username or "", safe="")
    netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def expand_env(
    value: str | None, allowed: re.Pattern[str] | None = None, environ: dict[str, str] | None = None
) -> str | None:
    """Resolve `${NAME}` references (credentials are kept out of the database and policy files)."""
    if value is None:
        return None
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if allowed is not None and not allowed.match(name):
            raise PolicyError(
                f"environment variable {name} may not be referenced here (use CAM_* or CAMERA_*)"
            )
        if name not in env:
            raise PolicyError(f"environment variable {name} is not set")
        return env[name]

    return ENV_REF.sub(sub, value)


def with_credentials(url: str, user: str | None, password: str | None) -> str:
    """`url` with the user name (and password) put in, unless it has credentials already."""
    if user and "://" in url and "@" not in urllib.parse.urlsplit(url).netloc:
        parts = urllib.parse.urlsplit(url)
        cred = urllib.parse.quote(user, safe="")
        if password:
            cred += ":" + urllib.parse.quote(password, safe="")
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"{cred}@{parts.netloc}"))
    return url
