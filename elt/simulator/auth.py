"""A fake Keycloak realm for the simulator: password and refresh-token grants, bearer-token checks.

Token lifetimes follow the simulator's clock, so a test can expire a token by moving the clock on.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: The token endpoint path, as on ``airqino-auth.magentalab.it``.
TOKEN_PATH = "/realms/airqino/protocol/openid-connect/token"


@dataclass(frozen=True)
class AuthSettings:
    """Require ``Authorization: Bearer <token>`` on the data endpoint."""

    static_tokens: tuple[str, ...] = ("sim-static-token",)
    """Tokens always accepted (the "static bearer token" mode)."""
    users: Mapping[str, str] = field(default_factory=lambda: {"sim-user": "sim-password"})
    """username → password accepted by the password grant."""
    client_id: str = "airqino-client"
    """The public client id the password grant must name."""
    token_ttl_s: int = 300
    """``expires_in`` of issued access tokens (Keycloak's default: 5 minutes)."""
    refresh_ttl_s: int = 1800
    """``refresh_expires_in`` of issued refresh tokens."""


class TokenIssuer:
    """Issues and checks tokens; thread-safe."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self._clock = clock
        self._access: dict[str, datetime] = {}
        self._refresh: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def is_authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a valid, unexpired bearer token."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        token = authorization[7:].strip()
        if token in self.settings.static_tokens:
            return True
        with self._lock:
            expires = self._access.get(token)
        return expires is not None and self._clock() < expires

    def grant(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a token request (``status``, JSON body) like Keycloak does."""
        grant_type = form.get("grant_type", "")
        if form.get("client_id") != self.settings.client_id:
            return 401, {
                "error": "invalid_client",
                "error_description": "Invalid client or Invalid client credentials",
            }
        if grant_type == "password":
            username = form.get("username", "")
            if username not in self.settings.users or self.settings.users[username] != form.get("password"):
                return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
            return 200, self._issue(username)
        if grant_type == "refresh_token":
            with self._lock:
                entry = self._refresh.pop(form.get("refresh_token", ""), None)
            if entry is None or self._clock() >= entry[1]:
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            return 200, self._issue(entry[0])
        return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}

    def _issue(self, username: str) -> dict[str, Any]:
        now = self._clock()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._access[access] = now + timedelta(seconds=self.settings.token_ttl_s)
            self._refresh[refresh] = (username, now + timedelta(seconds=self.settings.refresh_ttl_s))
        return {
            "access_token": access,
            "expires_in": self.settings.token_ttl_s,
            "refresh_expires_in": self.settings.refresh_ttl_s,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": secrets.token_hex(8),
            "scope": "profile email",
        }
