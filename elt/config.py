"""Project configuration: ``config/elt.yml`` (the project) and ``config/profiles.yml`` (targets).

Both files are validated with pydantic; any problem is reported as a ``ConfigError`` naming the file, the key
path and what was expected. Secrets never live in these files: they come from the environment (or from a file
named by ``<VAR>_FILE``, for Docker/Kubernetes secrets). The environment overrides the files; every
variable is declared once, in ``elt.settings.EltSettings``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from elt.errors import ConfigError
from elt.settings import EltSettings, settings
from elt.yamlfile import KeyLines, YamlProblem, describe_validation, read_yaml_with_lines

CONFIG_FILE = Path("config") / "elt.yml"
PROFILES_FILE = Path("config") / "profiles.yml"

#: Every project variable's default and meaning: the one place they are written. ``config/elt.yml`` ``vars:``
#: overrides them (then a model's ``vars:``, then ``--vars``); ``elt schema config`` shows this list.
VAR_DEFAULTS: dict[str, tuple[Any, str]] = {
    "min_hours_per_day": (18, "a day is complete with at least this many valid final hours"),
    "stuck_hours": (6, "the same non-zero value this many hours in a run = frozen sensor"),
    "dead_zero_hours": (24, "exactly 0 this many hours in a run = dead sensor"),
    "max_gap_hours": (6, "a run of equal values continues across gaps (no value) of at most this many hours"),
    "max_co": (50, "CO physical maximum, mg/m3"),
    "max_pm25": (1000, "PM2.5 physical maximum, ug/m3"),
    "max_pm10": (1000, "PM10 physical maximum, ug/m3"),
    "who_pm25_24h": (15, "WHO 2021 24-hour PM2.5 guideline, ug/m3"),
    "forecast_retrain_days": (7, "elt run retrains the forecast model when its data is this many days old"),
    "forecast_missing_hours": (6, "a series that should be forecast may go this many hours without one"),
}
#: The default value of every project variable.
DEFAULT_VARS: dict[str, Any] = {name: value for name, (value, _) in VAR_DEFAULTS.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class StationConfig(_Strict):
    """One AirQino station. Metadata lives here because the API header's coordinates are unreliable."""

    id: str = Field(description="AirQino station id used in the API path, e.g. '283164601'.")
    name: str = Field(description="Human name shown in marts and dashboards, e.g. 'SMART188'.")
    timezone: str = Field(
        default="UTC",
        description="IANA timezone whose local days the daily mart uses, e.g. 'Africa/Abidjan'.",
    )
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude in decimal degrees.")
    lon: float | None = Field(default=None, ge=-180, le=180, description="Longitude in decimal degrees.")
    enabled: bool = Field(default=True, description="Disabled stations are neither loaded nor transformed.")
    stale_after_hours: int = Field(
        default=6, ge=1, description="`elt status` and alerts call the station stale after this many hours."
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"'{value}' is not a known IANA timezone (e.g. 'Africa/Abidjan').{hint}"
            ) from None
        return value


class AuthConfig(_Strict):
    """How to authenticate to the AirQino API. Secret values come only from the environment."""

    mode: Literal["none", "bearer", "password"] = Field(
        default="none",
        description="none: no auth; bearer: static token from AIRQINO_TOKEN; password: OAuth2 password grant "
        "with AIRQINO_USERNAME / AIRQINO_PASSWORD, the token fetched and refreshed automatically.",
    )
    token_url: str = Field(
        default="https://airqino-auth.magentalab.it/realms/airqino/protocol/openid-connect/token",
        description="Keycloak token endpoint for the password grant.",
    )
    client_id: str = Field(default="airqino", description="OAuth2 client id for the password grant.")
    token: SecretStr | None = Field(default=None, exclude=True, description="Set from AIRQINO_TOKEN only.")
    username: str | None = Field(default=None, description="Set from AIRQINO_USERNAME (or here, not secret).")
    password: SecretStr | None = Field(
        default=None, exclude=True, description="Set from AIRQINO_PASSWORD only."
    )


class SourceConfig(_Strict):
    """The AirQino API endpoint and how the client talks to it."""

    base_url: str = Field(
        default="https://airqino-api.magentalab.it", description="API base URL (env AIRQINO_BASE_URL)."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication mode and endpoints.")
    timeout_s: float = Field(
        default=120, gt=0, description="Per-request timeout; fetches have taken 12-127 s."
    )
    retries: int = Field(
        default=5, ge=0, description="Retries after the first attempt on timeouts, 429, 5xx."
    )
    backoff_base_s: float = Field(default=2.0, ge=0, description="First retry wait; doubles each attempt.")
    backoff_max_s: float = Field(default=300, ge=0, description="Upper bound of one retry wait.")
    concurrency: int = Field(default=4, ge=1, description="Stations fetched at the same time.")
    send_date_range: bool = Field(
        default=False,
        description="Send start_date/end_date query parameters (unconfirmed API feature); off = full window.",
    )


class ProjectConfig(_Strict):
    """The whole of ``config/elt.yml``."""

    name: str = Field(default="airqino", description="Project name, used in artifacts.")
    database: str = Field(default="airqino", description="MongoDB database (env ELT_DATABASE overrides).")
    stations: list[StationConfig] = Field(min_length=1, description="Stations to load and transform.")
    source: SourceConfig = Field(default_factory=SourceConfig, description="AirQino API settings.")
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Model variables; a variable not given keeps its default: "
        + "; ".join(f"{name}: {value} ({meaning})" for name, (value, meaning) in VAR_DEFAULTS.items())
        + ".",
    )

    @field_validator("stations")
    @classmethod
    def _unique_station_ids(cls, stations: list[StationConfig]) -> list[StationConfig]:
        ids = [s.id for s in stations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"station ids must be unique; repeated: {', '.join(dupes)}")
        return stations

    @field_validator("vars")
    @classmethod
    def _fill_default_vars(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("min_hours_per_day", "stuck_hours", "dead_zero_hours", "max_gap_hours"):
            least = 0 if key == "max_gap_hours" else 1
            if key in value and (
                not isinstance(value[key], int) or isinstance(value[key], bool) or value[key] < least
            ):
                kind = "a non-negative integer" if least == 0 else "a positive integer"
                raise ValueError(f"vars.{key} must be {kind}, got {value[key]!r}")
        for key in ("stuck_hours", "dead_zero_hours"):
            if value.get(key) == 1:
                raise ValueError(f"vars.{key} must be at least 2 (a run of one hour is not a run), got 1")
        return {**DEFAULT_VARS, **value}


class TargetConfig(_Strict):
    """One target of ``config/profiles.yml`` (where data is stored)."""

    embedded: bool | None = Field(
        default=None,
        description="false: a production target, never the embedded store; elt refuses to start when no "
        "MongoDB URI is set (MONGO_URI or mongo_uri). true or unset: the embedded store when no URI is set "
        "(for trying and developing).",
    )

    mongo_uri: SecretStr | None = Field(
        default=None,
        description="MongoDB URI without credentials (env MONGO_URI, which may carry them, overrides). "
        "Empty = the embedded SecantusDB server on embedded_path.",
    )
    database: str | None = Field(default=None, description="Overrides the project's database name.")
    embedded_path: str = Field(default=".elt/mongo", description="Data dir of the embedded server.")
    serving_dsn: SecretStr | None = Field(
        default=None, description="PostgreSQL DSN for `elt publish` without password (env SERVING_DSN)."
    )


class ProfilesConfig(_Strict):
    """The whole of ``config/profiles.yml``."""

    default_target: str = Field(default="dev", description="Target used when --target/ELT_TARGET is absent.")
    targets: dict[str, TargetConfig] = Field(
        default_factory=lambda: {"dev": TargetConfig()}, description="Named targets, e.g. dev and prod."
    )


class Project:
    """A loaded, validated project: its directory, configuration and the chosen target."""

    def __init__(self, project_dir: Path, config: ProjectConfig, target_name: str, target: TargetConfig):
        self.project_dir = project_dir
        self.config = config
        self.target_name = target_name
        self.target = target

    @property
    def database_name(self) -> str:
        """The MongoDB database: ``ELT_DATABASE`` > target > project."""
        return self.target.database or self.config.database

    @property
    def embedded_dir(self) -> Path:
        """Absolute data directory of the embedded server."""
        path = Path(self.target.embedded_path)
        return path if path.is_absolute() else self.project_dir / path

    @property
    def target_dir(self) -> Path:
        """Where artifacts (manifest, run results) are written."""
        return self.project_dir / "target"

    def enabled_stations(self) -> list[StationConfig]:
        """Stations with ``enabled: true``, in config order."""
        return [s for s in self.config.stations if s.enabled]

    def station(self, station_id: str) -> StationConfig:
        """The station with this id, or a ConfigError listing the known ids."""
        for station in self.config.stations:
            if station.id == str(station_id):
                return station
        known = ", ".join(s.id for s in self.config.stations)
        raise ConfigError(f"unknown station '{station_id}': config/elt.yml defines {known}")


def _read_yaml(path: Path, display: str) -> tuple[Any, KeyLines]:
    if not path.exists():
        raise ConfigError(
            f"{display}: file not found. Run elt from a project directory (one with config/elt.yml), "
            "or pass --project-dir / set ELT_PROJECT_DIR."
        )
    try:
        data, lines = read_yaml_with_lines(path)
    except YamlProblem as exc:
        raise ConfigError(f"{display}: {exc}") from None
    return (data if data is not None else {}), lines


def _validate(model: type[BaseModel], data: Any, display: str, lines: KeyLines | None = None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{display}: expected a mapping of keys at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(f"{display}: {line}" for line in describe_validation(exc, model, lines))
        ) from None


def _refuse_secrets_in_file(raw_config: Any) -> None:
    """Tokens and passwords are read from the environment only, never from config/elt.yml."""
    auth = raw_config.get("source", {}).get("auth", {}) if isinstance(raw_config, dict) else {}
    for key in ("token", "password"):
        variable = EltSettings.model_fields[f"airqino_{key}"].alias
        if isinstance(auth, dict) and key in auth:
            raise ConfigError(
                f"{CONFIG_FILE}: source.auth has a '{key}' entry, but secrets never go in this file: "
                f"set {variable} (or {variable}_FILE naming a secret file) in the environment"
            )


def _has_password(uri: str) -> bool:
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return False


def load_project(
    project_dir: Path | str, target: str | None = None, env: Mapping[str, str] | None = None
) -> Project:
    """Read, validate and resolve ``config/elt.yml`` and ``config/profiles.yml`` (optional) in a project.

    ``target`` (or ``ELT_TARGET``) picks the profile target; environment variables override file values.
    """
    environment = settings(env)
    project_dir = Path(project_dir).resolve()
    raw_config, config_lines = _read_yaml(project_dir / CONFIG_FILE, str(CONFIG_FILE))
    _refuse_secrets_in_file(raw_config)
    config = _validate(ProjectConfig, raw_config, str(CONFIG_FILE), config_lines)
    profiles_path = project_dir / PROFILES_FILE
    profiles = ProfilesConfig()
    if profiles_path.exists():
        raw_profiles, profiles_lines = _read_yaml(profiles_path, str(PROFILES_FILE))
        profiles = _validate(ProfilesConfig, raw_profiles, str(PROFILES_FILE), profiles_lines)
    target_name = target or environment.target or profiles.default_target
    if target_name not in profiles.targets:
        known = ", ".join(profiles.targets) or "(none)"
        raise ConfigError(f"{PROFILES_FILE}: target '{target_name}' is not defined; known targets: {known}")
    chosen = profiles.targets[target_name]
    for field_name in ("mongo_uri", "serving_dsn"):
        value = getattr(chosen, field_name)
        if value is not None and _has_password(value.get_secret_value()):
            raise ConfigError(
                f"{PROFILES_FILE}: targets.{target_name}.{field_name}: contains a password; secrets belong in "
                f"the environment ({'MONGO_URI' if field_name == 'mongo_uri' else 'SERVING_DSN'}) or a *_FILE"
            )
    resolved = _apply_target_env(chosen, environment)
    if resolved.embedded is False and resolved.mongo_uri is None:
        raise ConfigError(
            f"target '{target_name}' is a production target (embedded: false in {PROFILES_FILE}) but no MongoDB "
            "URI is set: set MONGO_URI (or MONGO_URI_FILE) in the environment, e.g. in .env. elt never falls back "
            "to the embedded store for it."
        )
    return Project(project_dir, _apply_env(config, environment), target_name, resolved)


def _apply_env(config: ProjectConfig, environment: EltSettings) -> ProjectConfig:
    source = config.source.model_copy(deep=True)
    if environment.airqino_base_url:
        source.base_url = environment.airqino_base_url
    if environment.airqino_token:
        source.auth.token = environment.airqino_token
    if environment.airqino_username:
        source.auth.username = environment.airqino_username.get_secret_value()
    if environment.airqino_password:
        source.auth.password = environment.airqino_password
    return config.model_copy(update={"source": source, "database": environment.database or config.database})


def _apply_target_env(target: TargetConfig, environment: EltSettings) -> TargetConfig:
    update: dict[str, Any] = {}
    if environment.mongo_uri:
        update["mongo_uri"] = environment.mongo_uri
    if environment.database:
        update["database"] = environment.database
    if environment.serving_dsn:
        update["serving_dsn"] = environment.serving_dsn
    return target.model_copy(update=update)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/elt.yml`` (editors use it for completion and validation)."""
    return ProjectConfig.model_json_schema()


def profiles_json_schema() -> dict[str, Any]:
    """JSON Schema of ``config/profiles.yml``."""
    return ProfilesConfig.model_json_schema()
