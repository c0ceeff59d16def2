"""The whole hourly ``elt run`` measured step by step, against the hand-written floor, on a built project.

After a full build (``elt load`` + ``elt transform`` + ``elt test``, the full test pass) and one warm-up
``elt run`` (it trains the forecast model: the weekly cost, reported on its own), each measured hour moves the
simulator's clock on one hour and runs ``elt run`` (load, transform, test, forecast; publish too when
``SERVING_DSN`` is set) in one process. Per step: wall seconds and client CPU seconds (from the run record) and
the server's CPU seconds (its ``/proc`` CPU time sampled every 50 ms, split at the steps' start/finish times).

The floor, measured right after each hour in the same database: the same staging and daily pipelines
(rendered from ``aggregations/``) recomputing only the hours that hour changed (staging, reading back the
model's lookback) and their station-days (daily), hand-driven from the bench with per-station, index-friendly
``$match`` + ``$merge`` into scratch collections: no change tracking, no tests, no forecast, no publish, no
process start. Ours doing all of that within a few times the floor is the
issue's "cost follows changes" target.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.cycle import default_window_args, last_json_line
from bench.harness import BenchServer, Sample, run_measured, server_cpu_between, summarize
from bench.project import BenchProject
from elt.simulator import AirQinoSimulator

STEPS = ("load", "transform", "test", "forecast", "publish")
FLOOR_STAGING = "bench_floor_stg"
FLOOR_DAILY = "bench_floor_daily"


def _unix(value: Any) -> float | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def measured_run(
    project: BenchProject, server: BenchServer, label: str, sim: AirQinoSimulator, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One ``elt run`` over the default-like window at the simulator's time; the sample and per-step costs."""
    window = default_window_args(sim)
    trace: list[tuple[float, float]] = []
    sample = run_measured(
        label,
        project.elt("run", "--no-alerts", "--no-summary", "--json", "--trigger", "bench", *extra, *window),
        env=project.env, server=server.process, check=False, server_trace=trace,
    )  # fmt: skip
    record = last_json_line(sample.stdout)
    steps: dict[str, Any] = {}
    for step in record.get("steps", []):
        start, end = _unix(step.get("started_at")), _unix(step.get("finished_at"))
        server_cpu = server_cpu_between(trace, start, end) if start and end else None
        steps[step["name"]] = {
            "status": step.get("status"),
            "wall_s": step.get("seconds"),
            "client_cpu_s": step.get("cpu_s"),
            "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
            "counts": step.get("counts"),
            "reason": step.get("reason"),
        }
    return {"sample": sample, "status": record.get("status"), "exit_code": sample.returncode, "steps": steps,
            "error": record.get("error")}  # fmt: skip


def floor(
    server: BenchServer, project: BenchProject, hour: datetime, station_ids: list[str]
) -> dict[str, Any]:
    """The hand-written floor for the hour ending at ``hour``: staging of the changed hours (the one that became
    final and the new provisional one) and the daily averages of their days, per station."""
    from elt.config import load_project
    from elt.models import load_models

    mp = load_models(load_project(project.directory, None))
    staging = next(m for m in mp.models.values() if m.name == "stg_airqino_hourly")
    daily = next(m for m in mp.models.values() if m.name == "daily_sensor_averages")
    client = server.client()
    db = client[project.database]
    db[FLOOR_STAGING].create_index([("station_id", 1), ("ts", 1)], unique=True)
    db[FLOOR_DAILY].create_index([("station_id", 1), ("day", 1)], unique=True)
    lo, hi = hour.replace(tzinfo=None) - timedelta(hours=1), hour.replace(tzinfo=None)
    back, ahead = timedelta(seconds=staging.lookback_s), timedelta(seconds=staging.lookahead_s)
    cpu0, server0, wall0 = (
        time.process_time(),
        server.process.cpu_s() if server.process else None,
        time.perf_counter(),
    )
    staging_pipeline = mp.render_pipeline(staging, lo, hi)
    for station_id in station_ids:
        db["raw_airqino_hourly"].aggregate([
            {"$match": {"station_id": station_id, "ts": {"$gte": lo - back, "$lte": hi + ahead}}},
            *staging_pipeline,
            {"$match": {"station_id": station_id, "ts": {"$gte": lo, "$lte": hi}}},
            {"$project": {"_id": 0}},
            {"$merge": {"into": FLOOR_STAGING, "on": ["station_id", "ts"], "whenMatched": "replace",
                        "whenNotMatched": "insert"}},
        ])  # fmt: skip
    staging_wall = time.perf_counter() - wall0
    daily_pipeline = mp.render_pipeline(daily)
    for station_id in station_ids:
        days = sorted({d["day"] for d in db[FLOOR_STAGING].find(
            {"station_id": station_id, "ts": {"$gte": lo, "$lte": hi}}, {"day": 1, "_id": 0}) if d.get("day")})  # fmt: skip
        if not days:
            continue
        db["stg_airqino_hourly"].aggregate([
            {"$match": {"station_id": station_id, "day": {"$gte": days[0], "$lte": days[-1]}}},
            *daily_pipeline,
            {"$merge": {"into": FLOOR_DAILY, "on": ["station_id", "day"], "whenMatched": "replace",
                        "whenNotMatched": "insert"}},
        ])  # fmt: skip
    wall = time.perf_counter() - wall0
    client_cpu = time.process_time() - cpu0
    server_cpu = server.process.cpu_s() - server0 if server.process and server0 is not None else None
    client.close()
    return {"wall_s": round(wall, 3), "staging_wall_s": round(staging_wall, 3),
            "daily_wall_s": round(wall - staging_wall, 3), "client_cpu_s": round(client_cpu, 3),
            "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
            "total_cpu_s": round(client_cpu + (server_cpu or 0.0), 3)}  # fmt: skip


def _step_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in STEPS:
        rows = [r["steps"][name] for r in runs if name in r["steps"]]
        if not rows:
            continue

        def median(key: str, rows: list[dict[str, Any]] = rows) -> float | None:
            values = sorted(v[key] for v in rows if v.get(key) is not None)
            return round(values[len(values) // 2], 3) if values else None

        out[name] = {"status": rows[-1]["status"], "wall_s_median": median("wall_s"),
                     "client_cpu_s_median": median("client_cpu_s"), "server_cpu_s_median": median("server_cpu_s"),
                     "reason": rows[-1].get("reason")}  # fmt: skip
    return out


def hourly_section(
    project: BenchProject, server: BenchServer, sim: AirQinoSimulator, hours: int, label: str
) -> dict[str, Any]:
    """``elt test`` (full pass) and a warm-up ``elt run``, then ``hours`` measured hourly runs, each followed by
    the floor; returns the JSON section (medians, per step, ratios)."""
    full_tests = run_measured(f"{label} elt test (full pass)", project.elt("test"), env=project.env,
                              server=server.process, check=False)  # fmt: skip
    sim.advance(hours=1)
    warm = measured_run(project, server, f"{label} warm-up elt run", sim)
    runs, floors = [], []
    station_ids = list(sim.stations)
    for hour in range(hours):
        sim.advance(hours=1)
        runs.append(measured_run(project, server, f"{label} hourly elt run {hour + 1}", sim))
        current = sim.clock().replace(minute=0, second=0, microsecond=0)
        floors.append(floor(server, project, current, station_ids))
    samples: list[Sample] = [r["sample"] for r in runs]
    total = summarize(samples)

    def floor_median(key: str) -> float | None:
        values = sorted(f[key] for f in floors if f.get(key) is not None)
        return values[len(values) // 2] if values else None

    floor_wall, floor_cpu = floor_median("wall_s"), floor_median("total_cpu_s")
    return {
        "full_test_pass": full_tests.as_json(),
        "warm_up_run": {**warm["sample"].as_json(), "status": warm["status"], "steps": warm["steps"]},
        "hourly_runs": total,
        "hourly_steps": _step_summary(runs),
        "runs": [
            {**r["sample"].as_json(), "status": r["status"], "error": r["error"], "steps": r["steps"]}
            for r in runs
        ],  # fmt: skip
        "floor": {"runs": floors, "wall_s_median": floor_wall, "total_cpu_s_median": floor_cpu},
        "hourly_over_floor_wall": round(total["wall_s_median"] / floor_wall, 2) if floor_wall else None,
        "hourly_over_floor_cpu": round(total["total_cpu_s_median"] / floor_cpu, 2) if floor_cpu else None,
    }
