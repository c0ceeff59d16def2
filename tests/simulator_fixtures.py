"""Pytest fixtures around the local AirQino simulator (imported by tests/conftest.py).

- ``airqino_simulator``: two generated brief stations (283164601 SMART188, 283181971 SMART189), seed 42, the
  clock frozen at ``SIMULATOR_NOW``; attributes ``base_url``, ``stations``, ``clock``, ``set_now``,
  ``advance``, ``set_fault``, ``revise_history``, ``request_count``, ``stop``.
- ``airqino_simulator_factory``: ``make(count=2, seed=42, now=SIMULATOR_NOW, specs=None, auth=None,
  from_dir=None, names=None, window_days=365)`` for custom simulators (auth, more stations, replay); all of
  them are stopped after the test.
- ``airqino_recorded_simulator``: replays ../shared/data/airqino/v3_full_response_2024-09-09 (clock at the end
  of the recording); skipped when the recorded data is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from elt.simulator import AirQinoSimulator, AuthSettings, StationSpec

__all__ = [
    "SIMULATOR_NOW",
    "airqino_recorded_simulator",
    "airqino_simulator",
    "airqino_simulator_factory",
    "shared_airqino_dir",
]

#: Where the fixture clock stands: 30 minutes into the last hour of the 2024 recording.
SIMULATOR_NOW = datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc)


def shared_airqino_dir() -> Path | None:
    """The recorded data folder (env ``AIRQINO_SHARED_DATA`` or ``../shared/data/airqino``), or None."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data" / "airqino"]
    if os.environ.get("AIRQINO_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["AIRQINO_SHARED_DATA"]))
    return next((c for c in candidates if (c / "v3_full_response_2024-09-09").is_dir()), None)


@pytest.fixture
def airqino_simulator_factory() -> Iterator[Callable[..., AirQinoSimulator]]:
    """Build and start simulators; every one is stopped after the test."""
    started: list[AirQinoSimulator] = []

    def make(
        count: int = 2,
        seed: int = 42,
        now: datetime | None = SIMULATOR_NOW,
        specs: Iterable[StationSpec] | None = None,
        auth: AuthSettings | None = None,
        from_dir: Path | None = None,
        names: dict[str, str] | None = None,
        window_days: int = 365,
    ) -> AirQinoSimulator:
        if from_dir is not None:
            sim = AirQinoSimulator.from_dir(
                from_dir, names, now=now, auth=auth, window_days=window_days, seed=seed
            )
        else:
            sim = AirQinoSimulator.generated(
                count, seed, specs=specs, now=now, auth=auth, window_days=window_days
            )
        started.append(sim.start())
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def airqino_simulator(airqino_simulator_factory: Callable[..., AirQinoSimulator]) -> AirQinoSimulator:
    """Two generated brief stations, seed 42, clock frozen at ``SIMULATOR_NOW``."""
    return airqino_simulator_factory()


@pytest.fixture
def airqino_recorded_simulator(
    airqino_simulator_factory: Callable[..., AirQinoSimulator],
) -> AirQinoSimulator:
    """The 2024 recorded responses replayed, clock 30 minutes into the newest recorded hour."""
    shared = shared_airqino_dir()
    if shared is None:
        pytest.skip("recorded AirQino data (../shared/data/airqino) not present")
    return airqino_simulator_factory(from_dir=shared / "v3_full_response_2024-09-09", now=None)
