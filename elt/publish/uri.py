"""Passwords in database URIs: find them and strip them (the Superset bundle never carries one).

A password can sit in the user part (``user:secret@host``) or in a query parameter (``?password=secret``,
libpq's ``sslpassword``, ODBC-style ``pwd``); both count.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: Query parameters (compared case-insensitively) that carry a password.
PASSWORD_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword"})


def _is_password_param(name: str) -> bool:
    return name.strip().lower() in PASSWORD_PARAMS


def has_password(uri: str) -> bool:
    """True when ``uri`` carries a password, in its user part or in a query parameter."""
    parts = urlsplit(uri)
    return parts.password is not None or any(
        _is_password_param(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    )


def without_password(uri: str) -> str:
    """``uri`` with every password removed (user part and query parameters); other parameters are kept."""
    parts = urlsplit(uri)
    if not has_password(uri):
        return uri
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{quote(parts.username or '', safe='')}@{host}" if parts.username else host
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_password_param(k)]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
