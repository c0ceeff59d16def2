"""A local AirQino API for tests, demos and benchmarks: generated or recorded stations, faults, fake Keycloak.

Start one with ``AirQinoSimulator.generated(...)`` / ``AirQinoSimulator.from_dir(...)`` (a context manager),
or from the shell with ``elt simulate``. Faults and row changes live in ``elt.simulator.faults``.
"""

from elt.simulator.auth import TOKEN_PATH, AuthSettings
from elt.simulator.clock import SimClock
from elt.simulator.faults import Fault
from elt.simulator.generate import BRIEF_STATIONS, GeneratedStation, StationSpec, default_stations
from elt.simulator.recorded import RecordedStation, load_recorded_dir
from elt.simulator.server import DATA_PATH, AirQinoSimulator, RequestRecord

__all__ = [
    "BRIEF_STATIONS",
    "DATA_PATH",
    "TOKEN_PATH",
    "AirQinoSimulator",
    "AuthSettings",
    "Fault",
    "GeneratedStation",
    "RecordedStation",
    "RequestRecord",
    "SimClock",
    "StationSpec",
    "default_stations",
    "load_recorded_dir",
]
