"""Project config validation: good files load; each bad file names the file, the key path and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from elt.cli import main
from elt.config import DEFAULT_VARS, load_project
from elt.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path, config: dict | str, profiles: dict | None = None) -> Path:
    (tmp_path / "config").mkdir(exist_ok=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    (tmp_path / "config" / "elt.yml").write_text(text)
    if profiles is not None:
        (tmp_path / "config" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    return tmp_path


def _shipped_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "elt.yml").read_text())


def test_shipped_config_loads_with_the_two_abidjan_stations(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    project = load_project(tmp_path, env={})
    assert [(s.id, s.name, s.timezone) for s in project.enabled_stations()] == [
        ("283164601", "SMART188", "Africa/Abidjan"),
        ("283181971", "SMART189", "Africa/Abidjan"),
    ]
    assert project.config.vars["min_hours_per_day"] == 18
    assert project.config.vars["stuck_hours"] == 6
    assert project.config.vars["dead_zero_hours"] == 24
    assert project.target_name == "dev" and project.target.mongo_uri is None
    assert project.embedded_dir == tmp_path.resolve() / ".elt" / "mongo"


def test_environment_overrides_files_and_fills_secrets(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    token_file = tmp_path / "token.txt"
    token_file.write_text("s3cret-token\n")
    env = {
        "MONGO_URI": "mongodb://u:p@db.example:27017/",
        "ELT_DATABASE": "other_db",
        "AIRQINO_BASE_URL": "http://127.0.0.1:9999",
        "AIRQINO_TOKEN_FILE": str(token_file),
        "AIRQINO_USERNAME": "alice",
        "AIRQINO_PASSWORD": "pw",
        "SERVING_DSN": "postgresql://ro:pw@pg/serving",
        "ELT_TARGET": "prod",
    }
    project = load_project(tmp_path, env=env)
    assert project.target_name == "prod"
    assert project.target.mongo_uri.get_secret_value() == "mongodb://u:p@db.example:27017/"
    assert project.database_name == "other_db"
    assert project.config.source.base_url == "http://127.0.0.1:9999"
    assert project.config.source.auth.token.get_secret_value() == "s3cret-token"
    assert project.config.source.auth.username == "alice"
    assert project.target.serving_dsn.get_secret_value() == "postgresql://ro:pw@pg/serving"
    assert "s3cret" not in repr(project.config) and "pw@" not in repr(project.target)


def test_vars_keep_defaults_for_keys_not_given(tmp_path: Path) -> None:
    config = _shipped_config()
    config["vars"] = {"min_hours_per_day": 20}
    project = load_project(_project(tmp_path, config), env={})
    assert project.config.vars == {**DEFAULT_VARS, "min_hours_per_day": 20}


def _bad(config_change, expected: list[str]):
    return pytest.param(config_change, expected, id=expected[0][:40])


BAD_CASES = [
    (lambda c: c["stations"][0].update(timezone="Africa/Abidjn"),
     ["config/elt.yml: line 20: stations.0.timezone:", "'Africa/Abidjn' is not a known IANA timezone",
      "Did you mean 'Africa/Abidjan'?"]),
    (lambda c: c["stations"][1].update(nmae="x"),
     ["config/elt.yml: line 26: stations.1.nmae: unknown key; did you mean 'name'?", "allowed: id, name, timezone"]),
    (lambda c: c["source"].update(timeout_s="soon"),
     ["config/elt.yml: line 13: source.timeout_s:", "valid number", "'soon'"]),
    (lambda c: c["source"]["auth"].update(mode="oauth"),
     ["config/elt.yml: line 6: source.auth.mode:", "'none', 'bearer' or 'password'"]),
    (lambda c: c.update(stations=[]), ["config/elt.yml: line 14: stations:", "at least 1 item"]),
    (lambda c: c["stations"][1].update(id="283164601"),
     ["config/elt.yml: line 14: stations: station ids must be unique; repeated: 283164601"]),
    (lambda c: c["stations"][0].pop("name"), ["config/elt.yml: line 15: stations.0.name: required key is missing"]),
    (lambda c: c["vars"].update(stuck_hours=0), ["config/elt.yml: line 28: vars.stuck_hours: must be a positive integer, got 0"]),
    (lambda c: c["stations"][0].update(lat=95), ["config/elt.yml: line 17: stations.0.lat:", "less than or equal to 90"]),
    (lambda c: c.update(databse="x"), ["config/elt.yml: line 2: databse: unknown key; did you mean 'database'?"]),
]  # fmt: skip


@pytest.mark.parametrize(("change", "expected"), BAD_CASES)
def test_bad_config_names_file_key_and_problem_with_exit_2(
    tmp_path: Path, change, expected: list[str]
) -> None:
    config = _shipped_config()
    change(config)
    project_dir = _project(tmp_path, config)
    with pytest.raises(ConfigError) as excinfo:
        load_project(project_dir, env={})
    for fragment in expected:
        assert fragment in str(excinfo.value)
    assert "vars: vars." not in str(excinfo.value)  # the key path is said once
    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), "server", "status"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert expected[0] in result.output


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    project_dir = _project(tmp_path, "name: x\nstations:\n  - id: 1\n    name: [unclosed\n")
    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), "schema", "config"])
    assert result.exit_code == 0  # schema does not need a project
    with pytest.raises(ConfigError, match=r"config/elt.yml: line \d+, column \d+: invalid YAML"):
        load_project(project_dir, env={})


def test_missing_project_tells_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--project-dir / set ELT_PROJECT_DIR"):
        load_project(tmp_path, env={})


def test_unknown_target_lists_known_ones(tmp_path: Path) -> None:
    project_dir = _project(tmp_path, _shipped_config(), {"default_target": "dev", "targets": {"dev": {}}})
    with pytest.raises(ConfigError, match="target 'prod' is not defined; known targets: dev"):
        load_project(project_dir, target="prod", env={})


def test_password_in_profiles_is_refused(tmp_path: Path) -> None:
    profiles = {"targets": {"dev": {"mongo_uri": "mongodb://admin:hunter2@db:27017/"}}}
    project_dir = _project(tmp_path, _shipped_config(), profiles)
    with pytest.raises(ConfigError) as excinfo:
        load_project(project_dir, env={})
    assert "targets.dev.mongo_uri: contains a password" in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


def test_schema_config_prints_json_schema() -> None:
    result = CliRunner().invoke(main, ["schema", "config"])
    assert result.exit_code == 0
    schema = yaml.safe_load(result.output)
    assert schema["properties"]["stations"]["type"] == "array"
    assert "timezone" in schema["$defs"]["StationConfig"]["properties"]
    assert schema["$defs"]["StationConfig"]["properties"]["timezone"]["description"]
