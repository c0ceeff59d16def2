"""The docker compose deployment passes a config check, and no secret value is committed anywhere.

Without a docker engine (and usually without the compose plugin) the check is what ``docker compose config``
does offline: interpolate ``${VAR}`` from ``.env.example``, resolve anchors, validate against the Compose
Specification (the ``compose-spec`` parser, which rejects unknown keys and malformed values) and check what
the spec alone does not: references between services, volumes and files in this repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: ``$$``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``, ``${V?e}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset_or_empty = not current
        if op in (":?", "?") and (unset_or_empty if op == ":?" else current is None):
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and (unset_or_empty if op == ":-" else current is None):
            return interpolate(arg, env)
        return current or ""

    return _VAR.sub(replace, value)


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml with anchors resolved and variables substituted from ``env``."""
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(read_env_file(ENV_EXAMPLE))


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    compose_spec = pytest.importorskip(
        "compose_spec", reason="pip install compose-spec (the dev extra has it)"
    )
    parsed = compose_spec.PyCompose.from_yaml(yaml.safe_dump(compose))
    parsed.validate()
    assert sorted(parsed.service_names()) == [
        "airflow",
        "elt",
        "mongo",
        "mongo-keyfile",
        "mongo-rs0",
        "mongo-rs1",
        "mongo-rs2",
        "postgres",
        "preflight",
        "superset",
        "superset-init",
    ]


def test_compose_config_with_the_docker_cli_when_the_plugin_exists() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here; the spec validation above stands in")
    done = subprocess.run([docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config",
                           "--quiet"], capture_output=True, text=True, cwd=REPO_ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_services_wire_up_mongo_postgres_superset_elt_and_an_optional_airflow(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    mongo = services["mongo"]
    assert mongo["image"] == "mongo:7" and "--auth" in mongo["command"]
    assert "mongo-data:/data/db" in mongo["volumes"] and "healthcheck" in mongo
    assert services["postgres"]["image"].startswith("postgres:") and "healthcheck" in services["postgres"]
    elt = services["elt"]
    assert elt["depends_on"] == {"mongo": {"condition": "service_healthy"},
                                 "postgres": {"condition": "service_healthy"}}  # fmt: skip
    assert elt["environment"]["MONGO_URI"].startswith("mongodb://elt:change-me@mongo:27017/airqino")
    assert elt["environment"]["SERVING_DSN"] == "postgresql://elt_publisher:change-me@postgres:5432/airqino"
    assert services["superset"]["depends_on"]["superset-init"] == {
        "condition": "service_completed_successfully"
    }
    assert services["superset-init"]["command"] == ["superset-init"]
    assert services["airflow"]["profiles"] == ["airflow"]
    profiled = {name for name, s in services.items() if "profiles" in s}
    assert profiled == {"airflow", "mongo-keyfile", "mongo-rs0", "mongo-rs1", "mongo-rs2"}


def test_the_replica_profile_is_a_three_member_replica_set_with_keyfile_auth(compose: dict[str, Any]) -> None:
    services = compose["services"]
    members = [services[f"mongo-rs{i}"] for i in range(3)]
    for i, member in enumerate(members):
        assert member["profiles"] == ["replica"] and member["image"] == "mongo:7"
        command = member["command"]
        assert command[command.index("--replSet") + 1] == "rs0" and "--auth" in command
        assert command[command.index("--keyFile") + 1] == "/keys/keyfile"
        assert (
            f"mongo-rs{i}-data:/data/db" in member["volumes"] and "mongo-keys:/keys:ro" in member["volumes"]
        )
        assert member["depends_on"] == {"mongo-keyfile": {"condition": "service_completed_successfully"}}
        assert "healthcheck" in member
    # the first member initiates the set (all three members) and creates the users, from its healthcheck
    init = REPO_ROOT / "docker" / "mongo" / "replica-init.js"
    assert "./docker/mongo/replica-init.js:/opt/airqino/replica-init.js:ro" in members[0]["volumes"]
    assert members[0]["healthcheck"]["test"][-1] == "/opt/airqino/replica-init.js"
    script = init.read_text()
    assert all(f"mongo-rs{i}:27017" in script for i in range(3)) and '_id: "rs0"' in script
    assert members[0]["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "change-me"
    keyfile = services["mongo-keyfile"]
    assert keyfile["profiles"] == ["replica"] and keyfile["environment"]["MONGO_REPLICA_KEY"] == ""
    script = (REPO_ROOT / "docker" / "mongo" / "replica-keyfile.sh").read_text()
    assert 'if [[ -z "$key" || "$key" == "change-me" ]]' in script  # refused: the members never start keyless


def test_every_reference_resolves_to_a_service_a_volume_or_a_file(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO_ROOT / source).exists(), f"{name}: bind mount source {source} does not exist"
            else:
                assert source in volumes, f"{name}: named volume {source} is not declared"
        build = service.get("build")
        if build:
            dockerfile = REPO_ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (REPO_ROOT / build["context"] / source).exists(), (
                            f"{dockerfile}: COPY {source}"
                        )


def test_secrets_must_come_from_the_env_file() -> None:
    env = read_env_file(ENV_EXAMPLE)
    for required in ("MONGO_ROOT_PASSWORD", "ELT_MONGO_PASSWORD", "SUPERSET_SECRET_KEY", "POSTGRES_PASSWORD"):
        with pytest.raises(MissingVariable, match=required):
            load_compose({k: v for k, v in env.items() if k != required})


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|_KEY$")
_PLACEHOLDER = re.compile(r"^(change-me|PASSWORD|pw|secret|\*\*\*|\$\{.*|<.*>|\.\.\.)$", re.IGNORECASE)
_SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
_URI_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:'\"]+:([^@\s'\"]+)@")


def test_env_example_holds_placeholders_only() -> None:
    env = read_env_file(ENV_EXAMPLE)
    secrets = {k: v for k, v in env.items() if _SECRET_NAME.search(k)}
    assert "SUPERSET_SECRET_KEY" in secrets and "MONGO_ROOT_PASSWORD" in secrets
    for key, value in secrets.items():
        assert value in ("", "change-me"), f".env.example: {key} must be empty or change-me, got a value"


def _committed_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, text=True)  # fmt: skip
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO_ROOT / p for p in listed.stdout.splitlines() if p]


def test_no_secret_value_is_committed() -> None:
    files = _committed_files()
    assert REPO_ROOT / ".env" not in files, ".env holds real secrets: it must stay untracked (.gitignore)"
    problems = []
    for path in files:
        if (
            not path.is_file()
            or path.suffix in (".png", ".zip", ".ico", ".gz")
            or path.stat().st_size > 2_000_000
        ):
            continue
        text = path.read_text(errors="replace")
        relative = path.relative_to(REPO_ROOT)
        for what, pattern in _SECRET_PATTERNS.items():
            if pattern.search(text):
                problems.append(f"{relative}: looks like a {what}")
        if relative.parts[0] == "tests":  # tests hold fake credentials on purpose, e.g. to check redaction
            continue
        for match in _URI_PASSWORD.finditer(text):
            if not _PLACEHOLDER.match(match.group(1)):
                problems.append(f"{relative}: a URI with an inline password ({match.group(0)[:20]}...)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", ["", "change-me", "short"])
def test_the_replica_keyfile_service_refuses_a_missing_or_placeholder_key(key: str) -> None:
    script = REPO_ROOT / "docker" / "mongo" / "replica-keyfile.sh"
    done = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "MONGO_REPLICA_KEY": key},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and "MONGO_REPLICA_KEY" in done.stderr
