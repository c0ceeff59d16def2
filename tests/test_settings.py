"""``elt.settings``: every environment variable in one class, the ``_FILE`` convention, clear errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from elt.errors import ConfigError
from elt.settings import EltSettings, settings


def test_defaults_and_values_come_from_the_given_mapping_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELT_DATABASE", "from_os_environ")
    assert settings().database == "from_os_environ" and EltSettings().database == "from_os_environ"
    empty = settings({"ELT_RUN_LOOKBACK_HOURS": ""})  # empty = unset
    assert (empty.database, empty.run_lookback_hours, empty.run_lease_ttl_s) == (None, 48, 300)
    demo = settings({"ELT_DEMO_NOW": "2024-09-09T10:30Z", "ELT_RUN_LEASE_TTL_S": "30"})
    assert demo.demo_now == datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc) and demo.run_lease_ttl_s == 30


def test_a_secret_comes_from_the_variable_or_the_file_it_names(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok-from-file\n")
    assert settings({"AIRQINO_TOKEN_FILE": str(secret)}).airqino_token.get_secret_value() == "tok-from-file"
    both = settings({"AIRQINO_TOKEN": "tok-direct", "AIRQINO_TOKEN_FILE": str(secret)})
    assert both.airqino_token.get_secret_value() == "tok-direct"
    with pytest.raises(ConfigError, match=r"MONGO_URI_FILE=.*missing: cannot read the secret file"):
        settings({"MONGO_URI_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="SERVING_DSN still holds the placeholder 'change-me'"):
        settings({"SERVING_DSN": "postgresql://elt:change-me@db/airqino"})
    assert settings({"ELT_FAILPOINT_FILE": str(secret)}).failpoint is None  # only secrets have a _FILE


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ELT_RUN_LEASE_TTL_S": "soon"}, "ELT_RUN_LEASE_TTL_S='soon': Input should be a valid number"),
        ({"ELT_RUN_LEASE_TTL_S": "2"}, "ELT_RUN_LEASE_TTL_S='2': Input should be greater than or equal to 3"),
        (
            {"ELT_RUN_LOOKBACK_HOURS": "-1"},
            "ELT_RUN_LOOKBACK_HOURS='-1': Input should be greater than or equal",
        ),
        ({"ELT_DEMO_NOW": "noon"}, "ELT_DEMO_NOW='noon': .* \\(e.g. ELT_DEMO_NOW=2024-09-09T10:30Z\\)"),
        ({"ELT_ALERT_REPEAT_HOURS": "0"}, "ELT_ALERT_REPEAT_HOURS='0': Input should be greater than 0"),
    ],
)
def test_a_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(env)


def test_every_variable_is_declared_once_with_a_description() -> None:
    aliases = [field.alias for field in EltSettings.model_fields.values()]
    assert len(aliases) == len(set(aliases)) and all(aliases)
    assert all(field.description for field in EltSettings.model_fields.values())
