"""What the workloads share: simulators, bench projects, and "our" hourly cycle (``elt load`` + ``elt transform``)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from bench.harness import BenchServer, Sample, combine, run_measured
from bench.project import BenchProject, write_project
from elt.simulator import AirQinoSimulator

#: Where generated simulators' clocks stand: 30 minutes into an hour, like the fixture of the test suite.
SIM_NOW = datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc)
#: The recorded responses replayed by W1 when present (``AIRQINO_SHARED_DATA`` or ``../shared/data/airqino``).
RECORDED_DIR = (
    Path(os.environ.get("AIRQINO_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared/data/airqino")
    / "v3_full_response_2024-09-09"
)
#: Collections counted after a build.
COUNTED = ("raw_airqino_hourly", "stg_airqino_hourly", "daily_sensor_averages")


def transform_available() -> bool:
    """Whether this checkout has the ``elt transform`` command yet."""
    from elt.cli import main

    return "transform" in main.commands


@contextlib.contextmanager
def generated_simulator(
    count: int, seed: int = 42, now: datetime = SIM_NOW, window_days: int = 365
) -> Iterator[AirQinoSimulator]:
    """``count`` generated stations (the two brief stations first), clock frozen at ``now``."""
    with AirQinoSimulator.generated(count, seed, now=now, window_days=window_days) as sim:
        yield sim


@contextlib.contextmanager
def real_or_generated_simulator(hours_to_replay: int) -> Iterator[tuple[AirQinoSimulator, str]]:
    """The recorded SMART188/SMART189 year when present (clock ``hours_to_replay`` hours before its end, so that
    many hourly cycles still find new rows), else the two generated brief stations. Yields (simulator, kind)."""
    if (RECORDED_DIR / "283164601.json").exists():
        sim = AirQinoSimulator.from_dir(RECORDED_DIR)
        sim.set_now(sim.clock() - timedelta(hours=hours_to_replay))
        with sim:
            yield sim, "recorded"
        return
    with generated_simulator(2, now=SIM_NOW - timedelta(hours=hours_to_replay)) as sim:
        yield sim, "generated"


def station_pairs(sim: AirQinoSimulator) -> list[tuple[str, str]]:
    """``(id, name)`` of the simulator's stations, for the project config."""
    return [(sid, str(station.header().get("station_name") or sid)) for sid, station in sim.stations.items()]


def make_project(work_dir: Path, name: str, sim: AirQinoSimulator, server: BenchServer) -> BenchProject:
    """A fresh project on database ``bench_<name>`` (dropped first) pointing at ``sim``."""
    database = f"bench_{name}"
    client = server.client()
    client.drop_database(database)
    client.close()
    return write_project(
        work_dir / name, stations=station_pairs(sim), base_url=sim.base_url, mongo_uri=server.uri,
        database=database,
    )  # fmt: skip


@dataclass
class CycleResult:
    """One run of our pipeline: the load, the transform (None when unavailable) and both together."""

    load: Sample
    transform: Sample | None
    total: Sample
    load_json: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Samples as JSON, plus what the load reported (rows received/inserted, in-process seconds)."""
        stations = self.load_json.get("stations", [])
        return {
            "load": self.load.as_json(),
            "transform": self.transform.as_json() if self.transform else None,
            "total": self.total.as_json(),
            "rows_received": sum(s.get("received", 0) for s in stations),
            "rows_inserted": sum(s.get("inserted", 0) for s in stations),
            "rows_updated": sum(s.get("updated", 0) for s in stations),
        }


def our_cycle(
    project: BenchProject, server: BenchServer, label: str, full_refresh: bool = False
) -> CycleResult:
    """``elt load`` then ``elt transform`` (each its own process, as cron runs them), measured."""
    load = run_measured(
        f"{label} load", project.elt("load", "--json"), env=project.env, server=server.process
    )
    load_json = last_json_line(load.stdout)
    transform = None
    if transform_available():
        args = ["transform", "--full-refresh"] if full_refresh else ["transform"]
        transform = run_measured(
            f"{label} transform", project.elt(*args), env=project.env, server=server.process
        )
    steps = [load] + ([transform] if transform else [])
    return CycleResult(load, transform, combine(label, steps), load_json)


def default_window_args(sim: AirQinoSimulator) -> list[str]:
    """``--start``/``--end`` of the window ``elt run`` would pick by default at the simulator's time: from 48
    hours before the current hour to the end of the current, still-filling hour."""
    hour = sim.clock().replace(minute=0, second=0, microsecond=0)
    return [
        "--start",
        (hour - timedelta(hours=48)).isoformat(),
        "--end",
        (hour + timedelta(hours=1)).isoformat(),
    ]


def our_run(
    project: BenchProject, server: BenchServer, label: str, sim: AirQinoSimulator, steps: tuple[str, ...] = ()
) -> tuple[Sample, dict[str, Any]]:
    """One ``elt run`` (every step: load, transform, test, forecast, publish when configured; or only
    ``steps``), measured; returns the sample and the step statuses/seconds of its run record.

    The run's window is what the default window would be at the simulator's time (its clock is in the past):
    from 48 hours before the current hour to the end of the current, still-filling hour."""
    step_args = [arg for step in steps for arg in ("--step", step)] + default_window_args(sim)
    sample = run_measured(
        label,
        project.elt("run", "--no-alerts", "--no-summary", "--json", "--trigger", "bench", *step_args),
        env=project.env,
        server=server.process,
        check=False,
    )
    record = last_json_line(sample.stdout)
    steps = {
        step.get("name"): {
            "status": step.get("status"),
            "seconds": step.get("seconds"),
            "counts": step.get("counts"),
        }
        for step in record.get("steps", [])
    }
    return sample, {"status": record.get("status"), "exit_code": sample.returncode, "steps": steps}


def set_source_option(project: BenchProject, key: str, value: Any) -> None:
    """Change one key of the project's ``source:`` block (e.g. ``send_date_range``)."""
    path = project.directory / "config" / "elt.yml"
    config = yaml.safe_load(path.read_text())
    config["source"][key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def last_json_line(text: str) -> dict[str, Any]:
    """The JSON object a command printed last: the whole output, or its last line that is one."""
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return {}


def collection_counts(server: BenchServer, database: str) -> dict[str, int]:
    """Document counts of the raw, staging and daily collections."""
    client = server.client()
    try:
        return {name: client[database][name].estimated_document_count() for name in COUNTED}
    finally:
        client.close()


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded, None when either is missing or the denominator is zero."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)
