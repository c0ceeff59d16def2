"""Station shards (``--shard i/N``): parsing, assignment, and a sharded load + transform whose marts equal a
single-process run's, on the real wire server with the simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pymongo import MongoClient
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.errors import ConfigError
from elt.models.shards import Shard, parse_shard
from elt.run.runlog import RUNS_COLLECTION
from elt.run.shards import check_shard_steps
from elt.run.task import RunTask
from elt.simulator.server import AirQinoSimulator
from tests.run.run_helpers import mart_digest
from tests.simulator_fixtures import SIMULATOR_NOW


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 1 / 4 ", Shard(1, 4))]
)
def test_a_shard_is_i_of_n_counted_from_zero(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert shard.label == f"{shard.index}/{shard.count}" and shard.slug == f"{shard.index}-of-{shard.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [("3/3", "out of range: shards are 0 .. 2"), ("x", "expected i/N"), ("1/0", "at least 1"),
     ("-1/3", "expected i/N"), ("1", "expected i/N"), ("1/2/3", "expected i/N")],
)  # fmt: skip
def test_a_bad_shard_is_refused_with_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_shard(text)
    assert repr(text) in str(caught.value)


def test_shards_slice_the_sorted_ids_evenly_and_cover_every_station_once() -> None:
    ids = ["283200005", "283164601", "283200002", "283181971", "283200003", "283200004", "283200006"]
    slices = [Shard(i, 3).stations(ids) for i in range(3)]
    assert sorted(s for part in slices for s in part) == sorted(ids)  # each station in exactly one shard
    assert [len(part) for part in slices] == [3, 2, 2]
    ranked = sorted(ids)
    assert slices[0] == [
        s for s in ids if s in (ranked[0], ranked[3], ranked[6])
    ]  # the k-th sorted id: k mod 3
    assert all(part == [s for s in ids if s in part] for part in slices)  # the given order is kept
    assert Shard(0, 1).stations(ids) == ids
    assert Shard(4, 5).stations(ids[:3]) == []  # more shards than stations: an empty shard


def test_only_load_and_transform_run_per_shard() -> None:
    check_shard_steps(["load", "transform"], Shard(0, 2), False)
    check_shard_steps([], None, True)
    with pytest.raises(ConfigError, match="applies to the steps load and transform only"):
        check_shard_steps(["load", "test"], Shard(0, 2), False)
    with pytest.raises(ConfigError, match="all steps"):
        check_shard_steps([], Shard(0, 2), False)
    with pytest.raises(ConfigError, match="exclude each other"):
        check_shard_steps(["load"], Shard(0, 2), True)


@pytest.mark.parametrize("command", ["load", "transform"])
def test_the_cli_names_a_bad_shard_and_exits_2(project_dir: Path, command: str) -> None:
    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), command, "--shard", "3/3"])
    assert result.exit_code == 2, result.output
    assert "--shard '3/3'" in result.output and "shards are 0 .. 2" in result.output


def test_elt_run_shards_need_a_run_id(project_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["--project-dir", str(project_dir), "run", "--step", "load", "--shard", "0/2"]
    )
    assert result.exit_code == 2 and "need --run-id" in result.output


def _with_stations(project_dir: Path, sim: AirQinoSimulator) -> None:
    config_file = project_dir / "config" / "elt.yml"
    config = yaml.safe_load(config_file.read_text())
    config["stations"] = [{"id": sid, "name": f"S{sid}", "timezone": "Africa/Abidjan", "lat": 5.36, "lon": -3.95}
                          for sid in sorted(sim.stations)]  # fmt: skip
    config_file.write_text(yaml.safe_dump(config))


def test_three_shards_then_the_marts_equal_one_process(
    project_dir: Path, mongo_db: Database, mongo_client: MongoClient,
    airqino_simulator_factory: Callable[..., AirQinoSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sim = airqino_simulator_factory(count=4, window_days=10)
    monkeypatch.setenv("AIRQINO_BASE_URL", sim.base_url)
    monkeypatch.delenv("SERVING_DSN", raising=False)
    _with_stations(project_dir, sim)
    project = load_project(project_dir)
    single = mongo_client[f"{mongo_db.name}_single"]
    try:
        alone = RunTask(
            project, single, steps=["load", "transform", "test"], now=SIMULATOR_NOW, alerts=False
        ).run()
        assert alone.ok, alone.record.get("error")

        run_id = "sharded-1"
        for i in range(3):
            part = RunTask(project, mongo_db, steps=["load", "transform"], run_id=run_id, shard=Shard(i, 3),
                           now=SIMULATOR_NOW, alerts=False).run()  # fmt: skip
            assert part.ok, part.record.get("error")
        after = RunTask(project, mongo_db, steps=["load", "transform", "test"], run_id=run_id, after_shards=True,
                        now=SIMULATOR_NOW, alerts=False).run()  # fmt: skip
        assert after.ok, after.record.get("error")

        assert mart_digest(mongo_client, mongo_db.name) == mart_digest(mongo_client, single.name)
        assert (
            mongo_db.stg_airqino_hourly.count_documents({})
            == single.stg_airqino_hourly.count_documents({})
            > 0
        )
        record = mongo_db[RUNS_COLLECTION].find_one({"_id": run_id})
        assert record["status"] == "success"
        shards = record["shards"]
        assert sorted(shards) == [f"{step}-{i}-of-3" for step in ("load", "transform") for i in range(3)]
        assert [shards[f"load-{i}-of-3"]["counts"]["stations"] for i in range(3)] == [2, 1, 1]
        load = after.step("load")["counts"]
        assert load["shards"] == 3 and load["inserted"] == alone.step("load")["counts"]["inserted"]
        assert after.step("test")["status"] == "ok"

        # an hour later nothing changed upstream: a shard rebuilds nothing
        again = RunTask(project, mongo_db, steps=["transform"], run_id="sharded-2", shard=Shard(1, 3),
                        now=SIMULATOR_NOW, alerts=False).run()  # fmt: skip
        assert again.ok and again.record["shards"]["transform-1-of-3"]["counts"]["partitions"] == 0

        # a project that ran unsharded switches to shards: they go on from its watermark, rebuilding nothing
        switched = RunTask(project, single, steps=["transform"], run_id="switched", shard=Shard(0, 2),
                           now=SIMULATOR_NOW, alerts=False).run()  # fmt: skip
        assert switched.ok and switched.record["shards"]["transform-0-of-2"]["counts"]["partitions"] == 0
    finally:
        mongo_client.drop_database(single.name)
