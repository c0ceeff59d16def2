"""A throw-away airqino-elt project for a benchmark: the repo's models, the simulator's stations, one database."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.harness import REPO_ROOT


@dataclass
class BenchProject:
    """A project directory whose target is ``database`` on the bench server (``MONGO_URI`` in ``env``)."""

    directory: Path
    database: str
    env: dict[str, str]

    def elt(self, *args: str) -> list[str]:
        """The command line of ``elt <args>`` on this project (run as ``python -m elt``)."""
        return [sys.executable, "-m", "elt", "--project-dir", str(self.directory), "-q", *args]


def write_project(
    directory: Path,
    *,
    stations: Iterable[tuple[str, str]],
    base_url: str,
    mongo_uri: str,
    database: str,
    timezone: str = "Africa/Abidjan",
    source: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> BenchProject:
    """Write ``config/elt.yml``/``profiles.yml`` and copy ``aggregations/`` into ``directory``.

    ``stations`` are ``(id, name)`` pairs; ``source`` overrides keys of the ``source`` section.
    """
    config_dir = directory / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "name": "bench",
        "database": database,
        "stations": [
            {"id": station_id, "name": name, "timezone": timezone, "lat": 5.36, "lon": -3.95}
            for station_id, name in stations
        ],
        "source": {
            "base_url": base_url,
            "timeout_s": 120,
            "retries": 1,
            "backoff_base_s": 0.2,
            "concurrency": 4,
            **(source or {}),
        },  # fmt: skip
    }
    (config_dir / "elt.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    profiles = {
        "default_target": "bench",
        "targets": {"bench": {"database": database, "embedded_path": str(directory / ".elt" / "mongo")}},
    }
    (config_dir / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    models = directory / "aggregations"
    if models.exists():
        shutil.rmtree(models)
    if (REPO_ROOT / "aggregations").exists():
        shutil.copytree(REPO_ROOT / "aggregations", models)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELT_", "AIRQINO_"))}
    env.update(MONGO_URI=mongo_uri, PYTHONPATH=str(REPO_ROOT), **(extra_env or {}))
    return BenchProject(directory, database, env)
