"""``elt dashboard import``: build the bundle and import it with Superset's own interpreter.

Superset lives in its own virtualenv (``scripts/superset_env.sh`` makes ``.superset-venv``), never in elt's
dependencies, so the import runs ``superset_import.py`` with that venv's Python. The database URI that
Superset uses (with its password) is passed in the environment, never on a command line or in the bundle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from elt.config import Project
from elt.errors import ConfigError, PublishError
from elt.logs import redact
from elt.publish.superset_bundle import build_bundle
from elt.publish.superset_import import DATABASE_URI_ENV
from elt.publish.tables import serving_tables
from elt.publish.uri import without_password

log = logging.getLogger(__name__)

IMPORT_SCRIPT = Path(__file__).with_name("superset_import.py")
#: Environment variable holding the SQLAlchemy URI Superset reads the serving database with.
SERVING_URI_ENV = "SUPERSET_SERVING_URI"


@dataclass
class ImportResult:
    """What Superset reported after the import."""

    dashboard_id: int
    slug: str
    charts: dict[str, int]
    database_uri_set: bool
    bundle: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self.__dict__.copy()


def dsn_to_sqlalchemy_uri(dsn: str) -> str:
    """A libpq DSN (URL or key=value) as a ``postgresql+psycopg2://`` URI for Superset."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    user = quote(params.get("user", ""), safe="")
    password = f":{quote(params['password'], safe='')}" if params.get("password") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql+psycopg2://{auth}{params.get('host', 'localhost')}{port}/{params.get('dbname', '')}"


def superset_database_uri(project: Project, env: dict[str, str] | None = None) -> str | None:
    """The URI Superset should use: SUPERSET_SERVING_URI, else the publishing DSN (with a warning), else None."""
    env = dict(os.environ) if env is None else env
    if env.get(SERVING_URI_ENV):
        return env[SERVING_URI_ENV]
    if project.target.serving_dsn is not None:
        log.warning(
            "%s is not set: Superset will read the serving database with the publishing account of SERVING_DSN; "
            "prefer a read-only role (docs/superset.md)",
            SERVING_URI_ENV,
        )
        return dsn_to_sqlalchemy_uri(project.target.serving_dsn.get_secret_value())
    return None


def find_superset_python(project: Project, explicit: str | None = None) -> Path:
    """The Python of the Superset virtualenv: ``explicit``, $SUPERSET_PYTHON, .superset-venv, or beside ``superset``."""
    candidates = [
        explicit,
        os.environ.get("SUPERSET_PYTHON"),
        str(project.project_dir / ".superset-venv/bin/python"),
    ]
    on_path = shutil.which("superset")
    if on_path:
        candidates.append(str(Path(on_path).parent / "python"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PublishError(
        "Superset not found: run scripts/superset_env.sh (creates .superset-venv), or set SUPERSET_PYTHON to the "
        "python of a virtualenv where apache-superset is installed"
    )


def import_dashboard(
    project: Project,
    username: str = "admin",
    superset_python: str | None = None,
    env: dict[str, str] | None = None,
) -> ImportResult:
    """Build ``config/superset`` into a bundle, import it (overwriting) and set the database URI."""
    env = dict(os.environ) if env is None else dict(env)
    python = find_superset_python(project, superset_python)
    source = project.project_dir / "config" / "superset"
    env.setdefault("SUPERSET_CONFIG_PATH", str(source / "superset_config.py"))
    if not env.get("SUPERSET_SECRET_KEY") and env["SUPERSET_CONFIG_PATH"] == str(
        source / "superset_config.py"
    ):
        raise ConfigError("SUPERSET_SECRET_KEY is not set (config/superset/superset_config.py reads it)")
    uri = superset_database_uri(project, env)
    if uri is None:
        log.warning(
            "no %s or SERVING_DSN: the database keeps the bundle's URI from database.yaml", SERVING_URI_ENV
        )
    else:
        env[DATABASE_URI_ENV] = uri
    project.target_dir.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(
        source,
        project.target_dir / "superset_bundle.zip",
        serving_tables(project),
        without_password(uri) if uri else None,
        [s.name for s in project.config.stations],
    )
    with tempfile.TemporaryFile("w+") as stderr:
        completed = subprocess.run(
            [str(python), str(IMPORT_SCRIPT), str(bundle), "--username", username],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=600, check=False,
        )  # fmt: skip
        stderr.seek(0)
        errors = stderr.read()
    if completed.returncode != 0:
        tail = "\n".join(line for line in errors.strip().splitlines()[-15:])
        raise PublishError(
            f"Superset import of {bundle} failed (exit {completed.returncode}):\n{redact(tail)}"
        )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return ImportResult(bundle=str(bundle), **report)
