"""Every environment variable elt reads, declared once: ``EltSettings`` (pydantic-settings).

A field's alias is the variable's name. An empty variable counts as unset. A secret (``secret=True``:
``MONGO_URI``, ``SERVING_DSN``, ``AIRQINO_TOKEN``, ``AIRQINO_USERNAME``, ``AIRQINO_PASSWORD``,
``ELT_ALERT_WEBHOOK_URL``) may instead be in a file named by ``<VAR>_FILE`` (Docker/Kubernetes secrets); a
secret still holding the ``change-me`` placeholder of ``.env.example`` is refused. A bad value is a
``ConfigError`` naming the variable (exit 2). Read the settings with ``settings()`` (``os.environ``) or
``settings(env)`` (a given mapping, e.g. in tests); they are read afresh on every call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from elt.errors import ConfigError
from elt.utc import as_utc

#: The placeholder ``.env.example`` ships for every secret (also ``changeme``, ``change_me``).
PLACEHOLDER = re.compile(r"change[-_]?me", re.IGNORECASE)
#: The mapping ``settings(env)`` reads (``os.environ`` when unset).
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("elt_settings_environment", default=None)


def _var(alias: str, description: str, default: Any = None, example: Any = None, **bounds: Any) -> Any:
    """A variable: ``alias`` is its name; ``example`` (default: a number's default) is shown in errors."""
    example = default if example is None and isinstance(default, int | float) else example
    return Field(default, alias=alias, description=description, examples=None if example is None else [example],
                 **bounds)  # fmt: skip


def _secret(alias: str, description: str) -> Any:
    """A secret variable: also read from the file named by ``<alias>_FILE``; never shown in errors."""
    return Field(default=None, alias=alias, description=description, json_schema_extra={"secret": True})


def is_secret(field: FieldInfo) -> bool:
    """True for a secret field (read from ``VAR`` or ``VAR_FILE``, never shown in errors)."""
    return isinstance(field.json_schema_extra, dict) and bool(field.json_schema_extra.get("secret"))


class EltSettings(BaseSettings):
    """The environment of an ``elt`` process (defaults apply when a variable is unset or empty)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    # --- the project and its store --------------------------------------------------------------------------
    project_dir: Path | None = _var("ELT_PROJECT_DIR", "Project directory (after --project-dir; default .).")
    target: str | None = _var("ELT_TARGET", "Target of config/profiles.yml (after --target).")
    database: str | None = _var("ELT_DATABASE", "MongoDB database; overrides the target's and the project's.")
    mongo_uri: SecretStr | None = _secret("MONGO_URI", "MongoDB URI (may carry credentials); unset = target.")
    serving_dsn: SecretStr | None = _secret("SERVING_DSN", "PostgreSQL DSN of `elt publish`; unset = target.")
    # --- the AirQino source ---------------------------------------------------------------------------------
    airqino_base_url: str | None = _var("AIRQINO_BASE_URL", "API base URL; overrides source.base_url.")
    airqino_token: SecretStr | None = _secret("AIRQINO_TOKEN", "Bearer token (source.auth.mode: bearer).")
    airqino_username: SecretStr | None = _secret("AIRQINO_USERNAME", "User of the OAuth2 password grant.")
    airqino_password: SecretStr | None = _secret("AIRQINO_PASSWORD", "Password of the OAuth2 password grant.")
    # --- hourly runs and alerts -----------------------------------------------------------------------------
    run_lookback_hours: float = _var(
        "ELT_RUN_LOOKBACK_HOURS", "Default window: hours before the last successful run's end.", 48, ge=0
    )
    run_lease_ttl_s: float = _var(
        "ELT_RUN_LEASE_TTL_S", "Run lease time-to-live: a vanished host blocks runs this long.", 300, ge=3
    )
    demo_now: datetime | None = _var(
        "ELT_DEMO_NOW", "`elt run --demo`'s frozen instant (default: HH:30 UTC).", example="2024-09-09T10:30Z"
    )
    alert_webhook_url: SecretStr | None = _secret(
        "ELT_ALERT_WEBHOOK_URL", "Webhook of failed runs, stale stations."
    )
    alert_repeat_hours: float = _var(
        "ELT_ALERT_REPEAT_HOURS", "A station that stays stale is alerted again after these hours.", 24, gt=0
    )
    # --- diagnostics and crash tests ------------------------------------------------------------------------
    traceback: str | None = _var("ELT_TRACEBACK", "Any value: print the traceback of unexpected errors.")
    failpoint: str | None = _var("ELT_FAILPOINT", "Crash tests: pause at this point (elt.failpoint).")
    failpoint_dir: Path = _var("ELT_FAILPOINT_DIR", "Where a paused failpoint writes its marker.", Path("."))
    failpoint_timeout_s: float = _var(
        "ELT_FAILPOINT_TIMEOUT_S", "The longest pause at a failpoint.", 120, gt=0
    )

    @field_validator("demo_now")
    @classmethod
    def _demo_now_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment (``os.environ`` unless ``settings(env)`` gave one), with the
        ``_FILE`` convention; pydantic-settings' own env, dotenv and secrets-dir sources are not used."""
        env = _ENVIRONMENT.get()
        return init_settings, EnvironmentSource(settings_cls, os.environ if env is None else env)


class EnvironmentSource(PydanticBaseSettingsSource):
    """The variables of ``env`` by alias; a secret ``VAR`` also from the file named by ``VAR_FILE``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` reads every field (pydantic-settings API)."""
        return self.env.get(field.alias or field_name) or None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = field.alias or name
            value, source = self.env.get(variable) or None, variable
            secret = is_secret(field)
            if secret and value is None and self.env.get(f"{variable}_FILE"):
                path = self.env[f"{variable}_FILE"]
                try:
                    value = Path(path).read_text().strip() or None
                except OSError as exc:
                    raise ConfigError(
                        f"{variable}_FILE={path}: cannot read the secret file ({exc.strerror})"
                    ) from None
                source = f"{variable}_FILE ({path})"
            if secret and value and PLACEHOLDER.search(value):
                raise ConfigError(
                    f"{source} still holds the placeholder 'change-me' from .env.example: replace every "
                    "change-me value in .env (or the secret file) with a real one before starting"
                )
            if value is not None:
                values[variable] = value
        return values


def settings(env: Mapping[str, str] | None = None) -> EltSettings:
    """The settings from ``env`` (default ``os.environ``); ConfigError naming the variable of a bad value."""
    token = _ENVIRONMENT.set(os.environ if env is None else env)
    try:
        return EltSettings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _ENVIRONMENT.reset(token)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        variable = str(error["loc"][0]) if error["loc"] else "environment"
        field = next((f for f in EltSettings.model_fields.values() if f.alias == variable), None)
        shown = "(hidden)" if field is not None and is_secret(field) else repr(error.get("input"))
        example = f" (e.g. {variable}={field.examples[0]})" if field is not None and field.examples else ""
        lines.append(f"{variable}={shown}: {error['msg']}{example}")
    return "; ".join(lines)
