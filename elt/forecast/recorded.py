"""Staging rows of recorded ``getStationHourlyAvg`` responses, for backtests on archives.

The QC rules exist once, in ``aggregations/staging/stg_airqino_hourly.yml``. To give the forecast the same
hourly series from a folder of recorded responses (``<station_id>.json``), the archive is landed into a
scratch database on the project's server with the loader (``elt load --from-dir``), the staging model runs
there (``elt transform -s stg_airqino_hourly``, no artifacts written), and its rows are read back; the scratch
database is dropped afterwards, also on error or Ctrl-C (a process killed with SIGKILL leaves an
``elt_scratch_recorded_*`` database, safe to drop). The project's own database is never touched.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pandas as pd
from pymongo import MongoClient

from elt.config import Project
from elt.errors import EltError
from elt.forecast.series import read_staging
from elt.load.task import LoadTask
from elt.owned import STAGING_MODEL
from elt.sources.archive import ArchiveSource
from elt.transform.task import run_transform

log = logging.getLogger(__name__)

#: Prefix of the scratch databases (a random suffix makes concurrent backtests independent).
SCRATCH_PREFIX = "elt_scratch_recorded_"


def recorded_station_ids(directory: Path, station_ids: list[str] | None = None) -> list[str]:
    """Station ids of the ``<station_id>.json`` files in ``directory`` (only ``station_ids`` when given)."""
    stems = sorted(p.stem for p in Path(directory).glob("*.json"))
    return [s for s in stems if station_ids is None or s in station_ids]


def read_recorded_dir(
    project: Project, client: MongoClient, directory: Path, station_ids: list[str] | None = None
) -> pd.DataFrame:
    """Staging rows (``station_id``, ``ts``, ``provisional``, each measure and ``<measure>_valid``) of every
    ``<station_id>.json`` in ``directory`` (or only ``station_ids``), QC'd by the project's staging model in a
    scratch database on ``client``'s server.

    Raises ``EltError`` naming the file when a response cannot be landed, or the model when it fails.
    """
    stations = recorded_station_ids(directory, station_ids)
    if not stations:
        return pd.DataFrame(columns=["station_id", "ts"])
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    db = client[name]
    try:
        loaded = LoadTask(db, stations, ArchiveSource(Path(directory))).run()
        failed = [s for s in loaded.stations if s.status != "ok"]
        if failed:
            raise EltError(
                f"{directory}: cannot land the recorded response of station {failed[0].station_id}: "
                f"{failed[0].error}"
            )
        result = run_transform(project, db, select=[STAGING_MODEL], write_artifacts=False)
        if result.exit_code != 0:
            raise EltError(
                f"{directory}: model {STAGING_MODEL} failed on the recorded responses: {result.error}"
            )
        frame = read_staging(db, stations)
        log.info(
            "%d staging rows of %d recorded stations (scratch database %s)", len(frame), len(stations), name
        )
        return frame
    finally:
        client.drop_database(name)
