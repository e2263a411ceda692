"""The secrets this process knows: registered while configuration is read (and when a key is fetched
from Secrets Manager), so that the log pipeline (`common.logs`) can redact every one of them wherever it
appears — a second line of defence behind "never log a secret". Also the one way to show a connection URL.

Imports nothing of ours: the log pipeline needs it at import time, and must not pay for `common.config`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "MIN_SECRET_LENGTH",
    "register_secret",
    "register_url_credentials",
    "registered_secrets",
    "url_without_password",
]

_SECRETS: set[str] = set()


# Shorter values cannot be redacted usefully: replacing every "k" would garble every line.
MIN_SECRET_LENGTH = 4


def registered_secrets() -> frozenset[str]:
    return frozenset(_SECRETS)


def register_secret(value: str) -> None:
    """Mark a value fetched at run time (e.g. from Secrets Manager) for redaction in every log line."""
    if len(value) >= MIN_SECRET_LENGTH:
        _SECRETS.add(value)


def register_url_credentials(url: str) -> None:
    """A connection URL's secrets: its password, as written and decoded, and a `password` query
    parameter (libpq accepts both); the whole URL too when it holds one. A URL without a password (a
    local socket, trust or .pgpass authentication) holds no secret, and can be shown as it is."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password or ""]
        passwords += [value for key, value in parse_qsl(parts.query) if key == "password"]
    except ValueError:  # unparseable: keep all of it out of the logs
        register_secret(url)
        return
    for password in filter(None, passwords):
        register_secret(password)
        register_secret(unquote(password))
        register_secret(url)


def url_without_password(url: str) -> str:
    """A connection URL as it may be shown: its password (and a `password` query parameter) as ***.
    A URL without one comes back unchanged (the local stack's socket URL is used as it is shown)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if parts.password:
            userinfo, _, host = parts.netloc.rpartition("@")
            parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}")
        if any(key == "password" for key, _ in pairs):
            masked = [(key, "***" if key == "password" else value) for key, value in pairs]
            parts = parts._replace(query=urlencode(masked, safe="/*:"))
    except ValueError:
        return "***"
    return urlunsplit(parts)
