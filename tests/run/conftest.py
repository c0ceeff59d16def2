"""Fixtures of the ``elt run`` tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from elt.simulator import AirQinoSimulator


@pytest.fixture
def sim(airqino_simulator_factory: Callable[..., AirQinoSimulator], monkeypatch: pytest.MonkeyPatch
        ) -> AirQinoSimulator:  # fmt: skip
    """The two brief stations, 14 days of history, the clock at SIMULATOR_NOW; the project points at it."""
    simulator = airqino_simulator_factory(window_days=14)
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    monkeypatch.delenv("SERVING_DSN", raising=False)
    return simulator
