"""W6, scale on one machine: N generated stations x D days (default 5 x 365), measured with ``elt run``.

1. **First full build**: one ``elt run`` on an empty database (load the whole year, transform, test, forecast
   with its first training; publish is skipped without SERVING_DSN): wall, CPU (client and server), peak RSS.
2. **One hourly cycle**: the simulator's clock moves on an hour, one more ``elt run``.
3. **API latency**: another hour on, every station's fetch is delayed by the simulator by a seeded random
   12-127 s (the range real fetches have taken), the whole ``elt run`` measured again with
   ``source.concurrency`` parallel fetches and a client timeout above the slowest fetch. Its load wall is
   compared with the makespan the delays predict (stations handed to ``concurrency`` workers in order).

From those figures the section *computes* (never measures) the API concurrency that keeps an hourly cycle
inside its budget (``--w6-budget-s``, default 3300 s: the run starts at :05) for 100, 300 and 1,000 stations
when every fetch takes the slowest latency: ``C >= ceil(N / floor((budget - rest) / latency_max))``, where
``rest`` is the hourly cycle's wall without its load step, *as measured at this run's size*. At larger sizes
``rest`` grows with N (3-5 ms of CPU per changed staging row), so those rows say "computed from N stations",
never "measured".

Sizes: ``python -m bench --only W6 --w6-stations 100`` (or 300, 1000) runs the issue's sizes; 100 stations x 1
year is ~876k rows, about 45 CPU-minutes of full build on 2 cores with SecantusDB, 1,000 stations many hours.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from bench.cycle import collection_counts, generated_simulator, make_project, our_run, set_source_option
from bench.harness import BenchServer
from elt.simulator.faults import delay

#: The range the real API's fetches have taken (seconds).
LATENCY_S = (12.0, 127.0)
#: What an hourly cycle may take: it starts at :05 and must be done before the next one.
BUDGET_S = 3300.0
#: Station counts the concurrency table is computed for.
TABLE_SIZES = (100, 300, 1000)


def makespan(delays: list[float], workers: int) -> float:
    """Wall time of fetching ``delays`` in order with ``workers`` parallel workers (each takes the next one)."""
    free = [0.0] * max(1, workers)
    for seconds in delays:
        i = free.index(min(free))
        free[i] += seconds
    return max(free) if delays else 0.0


def needed_concurrency(stations: int, rest_s: float, latency_s: float, budget_s: float) -> int | None:
    """Smallest concurrency whose worst-case fetch waves (every fetch ``latency_s``) plus ``rest_s`` fit the
    budget; None when ``rest_s`` alone does not."""
    waves = math.floor((budget_s - rest_s) / latency_s)
    if waves < 1:
        return None
    return math.ceil(stations / waves)


def stations_held(rest_per_station_s: float, latency_s: float, concurrency: int, budget_s: float) -> int:
    """Largest station count whose hourly cycle fits the budget: fetch waves at ``latency_s`` on
    ``concurrency`` workers plus ``rest_per_station_s`` of work per station (linear in stations)."""
    held = 0
    while True:
        n = held + 1
        if math.ceil(n / max(1, concurrency)) * latency_s + n * rest_per_station_s > budget_s:
            return held
        held = n


def one_year_extrapolation(sample: Any, raw_rows: int, stations: int) -> dict[str, Any]:
    """The first full build scaled from ``raw_rows`` to a year of hourly rows per station, at the per-row rate
    measured (a full build is linear in rows: EXTRAPOLATED, not measured)."""
    year_rows = stations * 8760
    scale = year_rows / raw_rows if raw_rows else 0.0
    return {
        "what": "first full build at one year of history per station, EXTRAPOLATED from this run's per-row rate",
        "raw_rows_measured": raw_rows,
        "raw_rows_one_year": year_rows,
        "cpu_ms_per_row": round(1000 * sample.total_cpu_s / raw_rows, 3) if raw_rows else None,
        "wall_s": round(sample.wall_s * scale, 1),
        "total_cpu_s": round(sample.total_cpu_s * scale, 1),
    }


def _run_json(sample: Any, info: dict[str, Any]) -> dict[str, Any]:
    return {"sample": sample.as_json(), "status": info["status"], "exit_code": info["exit_code"],
            "steps": {k: {"status": v["status"], "seconds": v["seconds"]} for k, v in info["steps"].items()}}  # fmt: skip


def run(
    server: BenchServer,
    work_dir: Path,
    stations: int = 5,
    days: int = 365,
    latency: tuple[float, float] = LATENCY_S,
    concurrency: int = 4,
    budget_s: float = BUDGET_S,
    seed: int = 6,
) -> dict[str, Any]:
    """Full build, one hourly cycle and one hourly cycle under API latency; returns the W6 JSON section."""
    lo, hi = latency
    with generated_simulator(stations, window_days=days) as sim:
        project = make_project(work_dir, f"w6_{stations}", sim, server)
        set_source_option(project, "concurrency", concurrency)
        set_source_option(project, "timeout_s", int(hi) + 60)  # the slowest fetch must not time out
        full, full_info = our_run(project, server, "W6 first full build", sim)
        counts = collection_counts(server, project.database)
        sim.advance(hours=1)
        hourly, hourly_info = our_run(project, server, "W6 hourly cycle", sim)
        sim.advance(hours=1)
        rng = random.Random(seed)
        delays = {sid: round(rng.uniform(lo, hi), 1) for sid in sim.stations}
        for sid, seconds in delays.items():
            sim.set_fault(sid, delay(seconds))
        slow, slow_info = our_run(project, server, "W6 hourly cycle, API latency", sim)
        sim.clear_faults()
    load_s = (slow_info["steps"].get("load") or {}).get("seconds")
    hourly_load_s = (hourly_info["steps"].get("load") or {}).get("seconds") or 0.0
    rest_s = max(0.0, hourly.wall_s - hourly_load_s)
    predicted = makespan(list(delays.values()), concurrency)
    table = {str(n): needed_concurrency(n, rest_s, hi, budget_s) for n in (stations, *TABLE_SIZES)}
    raw_rows = counts.get("raw_airqino_hourly", 0)
    slow_rest_s = max(0.0, slow.wall_s - (load_s or 0.0))
    per_station = max(rest_s, slow_rest_s) / stations
    return {
        "description": f"{stations} generated stations x {days} days: first `elt run`, one hourly `elt run`, "
        f"one hourly `elt run` with every fetch delayed {lo:.0f}-{hi:.0f} s",
        "stations": stations,
        "days": days,
        "documents_after_full_build": counts,
        "first_full_build": _run_json(full, full_info),
        "hourly_cycle": _run_json(hourly, hourly_info),
        "hourly_cycle_api_latency": {
            **_run_json(slow, slow_info),
            "concurrency": concurrency,
            "fetch_delays_s": sorted(delays.values()),
            "load_wall_s": load_s,
            "predicted_fetch_makespan_s": round(predicted, 1),
            "fits_budget": slow.wall_s <= budget_s,
        },
        "first_full_build_one_year": one_year_extrapolation(full, raw_rows, stations) if days < 365 else None,
        "stations_one_machine_holds": {
            "what": f"largest station count whose hourly cycle fits {budget_s:.0f} s: fetch waves at {hi:.0f} s on "
            f"{concurrency} workers plus {per_station:.2f} s of work per station, the non-fetch wall of the hourly "
            f"cycles measured here divided by {stations} stations (PROJECTED linearly from this size, at {days} "
            "days of history)",
            "work_s_per_station": round(per_station, 3),
            "concurrency": concurrency,
            "stations": stations_held(per_station, hi, concurrency, budget_s),
        },
        "computed_concurrency": {
            "what": f"smallest source.concurrency with every fetch at {hi:.0f} s and the rest of the hourly cycle "
            f"as measured at {stations} stations ({rest_s:.1f} s) inside {budget_s:.0f} s. COMPUTED, not measured: "
            "at larger N the rest of the cycle grows with N",
            "rest_of_cycle_s_measured": round(rest_s, 2),
            "budget_s": budget_s,
            "by_stations": table,
        },
    }
