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


# Query parameters whose values are secrets or name someone (matched as parts of the key, any case):
# password, pass, pwd, token, key (apikey, access_key), secret, auth, signature, sig, user, username, cred...
_SECRET_QUERY_KEYS = ("pass", "pwd", "token", "key", "secret", "auth", "sig", "user", "cred", "session")


def _is_secret_key(key: str) -> bool:
    return any(s in key.lower() for s in _SECRET_QUERY_KEYS)


def redact_url(url: str) -> str:
    """The URL for logs and screens: user name and password (`***@host`) and the values of secret-looking
    query parameters (`password=***`) replaced, the fragment dropped. The relay's one redaction: its data
    plane, which may not import policies, is handed this text (CameraRuntime.redacted_url) and shows
    nothing else of a camera's URL."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode([(k, "***" if _is_secret_key(k) else v) for k, v in pairs], safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The secrets a URL holds: user name, password and secret query values (what redact_url hides)."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.username or "", parts.password or ""]
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return [url]
    found += [v for k, v in pairs if _is_secret_key(k)]
    return [urllib.parse.unquote(f) for f in found if f]


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
