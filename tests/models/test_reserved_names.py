"""Collections airqino-elt owns are never written by a model: refused as a model name and as a
``$merge``/``$out`` target (exit 2, nothing written), from the one list in ``elt.owned``."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pymongo.database import Database

import elt
from elt.cli import main
from elt.owned import OWNED_COLLECTIONS, RESERVED_PREFIXES

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Every owned collection, plus one name under each reserved prefix.
RESERVED_NAMES = sorted(OWNED_COLLECTIONS) + ["raw_custom", "elt_custom", "__elt_tmp_daily", "system_views"]


def _write_model(project_dir: Path, spec: dict) -> None:
    path = project_dir / "aggregations" / "marts" / "attacker.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _transform(project_dir: Path):
    return CliRunner().invoke(main, ["--project-dir", str(project_dir), "transform"], catch_exceptions=False)


@pytest.mark.parametrize("name", RESERVED_NAMES)
def test_a_model_named_like_an_owned_collection_is_refused_and_nothing_is_written(
    name: str, project_dir: Path, mongo_db: Database
) -> None:
    _write_model(project_dir, {"name": name, "from": "{{ ref('stg_airqino_hourly') }}", "materialized": "table",
                               "unique_key": ["station_id", "ts"], "pipeline": [{"$match": {}}]})  # fmt: skip
    result = _transform(project_dir)
    assert result.exit_code == 2, result.output
    assert f"model '{name}'" in result.stderr and "nothing was run" in result.stderr
    assert "reserved" in result.stderr or "only elt" in result.stderr
    assert mongo_db.list_collection_names() == []


@pytest.mark.parametrize("stage", ["$merge", "$out"])
@pytest.mark.parametrize("target", ["forecast_models", "elt_runs", "elt_locks"])
def test_a_write_stage_into_an_owned_collection_is_refused(
    stage: str, target: str, project_dir: Path, mongo_db: Database
) -> None:
    body = {"into": target} if stage == "$merge" else target
    _write_model(project_dir, {"name": "innocent", "from": "{{ ref('stg_airqino_hourly') }}",
                               "materialized": "table", "pipeline": [{stage: body}]})  # fmt: skip
    result = _transform(project_dir)
    assert result.exit_code == 2, result.output
    assert (
        f"{stage} is not allowed" in result.stderr and f"'{target}' is owned by airqino-elt" in result.stderr
    )
    assert mongo_db.list_collection_names() == []


def test_the_forecasts_message_names_the_command_that_writes_it(
    project_dir: Path, mongo_db: Database
) -> None:
    _write_model(project_dir, {"name": "forecasts", "from": "{{ ref('stg_airqino_hourly') }}",
                               "materialized": "table", "pipeline": [{"$match": {}}]})  # fmt: skip
    result = _transform(project_dir)
    assert result.exit_code == 2
    assert "which only elt forecast predict writes" in result.stderr
    assert "elt load" not in result.stderr


def test_every_collection_constant_is_an_owned_collection_or_a_model() -> None:
    """A module that adds a collection of its own must add it to elt.owned (so models cannot write it)."""
    models = {yaml.safe_load(p.read_text())["name"] for p in (REPO_ROOT / "aggregations").rglob("*.yml")
              if "name" in (yaml.safe_load(p.read_text()) or {})}  # fmt: skip
    declared: dict[str, str] = {}
    for info in pkgutil.walk_packages(elt.__path__, "elt."):
        if info.name.startswith(("elt.simulator", "elt.commands")):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra is missing
            continue
        for attr, value in vars(module).items():
            if attr.endswith("_COLLECTION") and isinstance(value, str):
                declared[f"{info.name}.{attr}"] = value
    from elt.sources.airqino import AirqinoSource

    for attr in ("raw_collection", "history_collection", "rejects_collection", "batches_collection"):
        declared[f"AirqinoSource.{attr}"] = getattr(AirqinoSource, attr)
    assert len(declared) >= 12
    missing = {
        where: name
        for where, name in declared.items()
        if name not in OWNED_COLLECTIONS | dict.fromkeys(models)
    }
    assert missing == {}, f"add these to elt.owned.OWNED_COLLECTIONS: {missing}"
    assert all(not m.startswith(RESERVED_PREFIXES) for m in models)


def test_every_collection_name_is_written_once_in_elt() -> None:
    """Python refers to a collection through its one constant in elt.owned, never by a literal of its own
    (a JSON key of the same spelling, ``"forecasts": [...]``, is not a collection)."""
    from elt.owned import DAILY_MODEL, FRESHNESS_MODEL, STAGING_MODEL

    names = [*OWNED_COLLECTIONS, STAGING_MODEL, DAILY_MODEL, FRESHNESS_MODEL]
    found: dict[str, list[str]] = {name: [] for name in names}
    for path in sorted((REPO_ROOT / "elt").rglob("*.py")):
        text = path.read_text()
        for name in names:
            literals = re.findall(rf"([\"']){name}\1(?!\s*:)", text)
            found[name] += [str(path.relative_to(REPO_ROOT))] * len(literals)
    assert {name: where for name, where in found.items() if where != ["elt/owned.py"]} == {}
