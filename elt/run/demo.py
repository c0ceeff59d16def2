"""``elt run --demo``: the whole job offline, against the built-in AirQino simulator.

The simulator serves generated data for the configured stations (the brief's SMART188/SMART189 with their known
defects, others synthetic) on a free local port, its clock frozen 30 minutes into the current hour, so two demo
runs in the same hour see byte-identical responses and change nothing. Data goes to ``<database>_demo`` on the
project's store (the embedded server when no MONGO_URI), never into the live database.

Every command that reads the marts takes the same ``--demo`` flag and reads that database
(``demo_database_project``): ``elt status --demo``, ``elt test --demo``, ``elt publish --demo``; ``elt dashboard``
reads PostgreSQL, where ``elt publish --demo`` put the demo's marts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from elt.config import AuthConfig, Project, StationConfig
from elt.errors import ConfigError
from elt.owned import DAILY_MODEL
from elt.settings import settings

log = logging.getLogger(__name__)

#: Days of history the demo simulator serves (enough for daily means, forecasts and their backtest).
DEMO_WINDOW_DAYS = 60
DEMO_SEED = 42


def demo_database(project: Project) -> str:
    """The demo's database name: the project's with ``_demo`` appended."""
    name = project.database_name
    return name if name.endswith("_demo") else f"{name}_demo"


def demo_now() -> datetime:
    """The demo's frozen instant: ``ELT_DEMO_NOW`` or 30 minutes into the current UTC hour."""
    frozen = settings().demo_now
    if frozen is not None:
        return frozen
    now = datetime.now(timezone.utc)
    return now.replace(minute=30, second=0, microsecond=0) if now.minute >= 30 else (
        now.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=30) - timedelta(hours=1)
    )  # fmt: skip


def _spec_for(station: StationConfig):  # noqa: ANN202 - elt.simulator.StationSpec, imported lazily
    from elt.simulator import BRIEF_STATIONS, StationSpec

    for spec in BRIEF_STATIONS:
        if spec.id == station.id:
            return spec
    offset = ZoneInfo(station.timezone).utcoffset(datetime.now()) or timedelta(0)
    return StationSpec(
        station.id, station.name, station.lat if station.lat is not None else 5.36,
        station.lon if station.lon is not None else -3.96, utc_offset_hours=round(offset.total_seconds() / 3600),
    )  # fmt: skip


@dataclass
class DemoSetup:
    """The running simulator and the project pointed at it."""

    project: Project
    base_url: str
    now: datetime
    stations: int


def demo_database_project(project: Project) -> Project:
    """A copy of ``project`` reading and writing the demo's database (no simulator: for status, test, publish)."""
    target = project.target.model_copy(update={"database": demo_database(project)})
    return Project(project.project_dir, project.config, project.target_name, target)


def demo_hint(project: Project, command: str) -> str:
    """`` (the demo's data is in X: run `elt COMMAND --demo`)`` or "" when the demo database is empty/absent."""
    from elt.store import open_store

    demo = demo_database_project(project)
    try:
        with open_store(demo) as store:
            if DAILY_MODEL not in store.db.list_collection_names():
                return ""
    except Exception:  # noqa: BLE001 - only a hint; the original error is what matters
        return ""
    return f" (the data of `elt run --demo` is in database {demo.database_name}: run `elt {command} --demo`)"


def demo_project(project: Project, base_url: str) -> Project:
    """A copy of ``project`` whose source is the simulator (no auth) and whose database is the demo's."""
    source = project.config.source.model_copy(update={"base_url": base_url, "auth": AuthConfig(mode="none"),
                                                      "retries": 1, "timeout_s": 60})  # fmt: skip
    config = project.config.model_copy(update={"source": source})
    target = project.target.model_copy(update={"database": demo_database(project)})
    return Project(project.project_dir, config, project.target_name, target)


@contextlib.contextmanager
def demo_environment(project: Project) -> Iterator[DemoSetup]:
    """Start the simulator for the project's enabled stations; yield the demo project; stop it afterwards."""
    from elt.simulator import AirQinoSimulator

    now = demo_now()
    specs = [_spec_for(s) for s in project.enabled_stations()]
    if not specs:
        raise ConfigError("config/elt.yml: every station is disabled; enable one to run the demo")
    sim = AirQinoSimulator.generated(specs=specs, seed=DEMO_SEED, now=now, window_days=DEMO_WINDOW_DAYS)
    with sim:
        log.info("demo: AirQino simulator at %s serving %d station(s), %d days of generated data, clock at %s",
                 sim.base_url, len(specs), DEMO_WINDOW_DAYS, now.isoformat(timespec="minutes"))  # fmt: skip
        yield DemoSetup(demo_project(project, sim.base_url), sim.base_url, now, len(specs))
