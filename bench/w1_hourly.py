"""W1, the hourly cycle on the two brief stations: an initial build of a year, then hourly incremental cycles,
then the whole hourly ``elt run`` step by step against the hand-written floor (``bench/hourly_run.py``).

The recorded SMART188/SMART189 year (``../shared/data/airqino``) is replayed when present, else the two
generated brief stations; the simulator clock moves on one hour before each cycle. Three kinds of hourly cycle:
``elt load`` + ``elt transform`` (two processes, the default figure); the whole job ``elt run`` (adds tests and
the forecast); and ``elt run --step load --step transform`` in one process with ``source.send_date_range: true``,
so the API is asked for the run's window only (an unconfirmed API feature the simulator implements).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cycle import (
    collection_counts,
    make_project,
    our_cycle,
    our_run,
    ratio,
    real_or_generated_simulator,
    set_source_option,
)
from bench.harness import BenchServer, summarize
from bench.hourly_run import hourly_section


def run(server: BenchServer, work_dir: Path, cycles: int = 3, run_cycles: int = 3) -> dict[str, Any]:
    """Initial load + transform, then ``cycles`` hourly cycles, then ``run_cycles`` hourly ``elt run`` (the whole
    job: load, transform, test, forecast; publish is skipped without SERVING_DSN), then ``run_cycles`` one-process
    load + transform runs with date-range fetches; returns the W1 JSON section."""
    with real_or_generated_simulator(hours_to_replay=cycles + 2 * run_cycles + 2) as (sim, kind):
        project = make_project(work_dir, "w1", sim, server)
        initial = our_cycle(project, server, "W1 initial")
        counts = collection_counts(server, project.database)
        hourly = []
        for hour in range(cycles):
            sim.advance(hours=1)
            hourly.append(our_cycle(project, server, f"W1 hour {hour + 1}"))
        section = hourly_section(project, server, sim, run_cycles, "W1")
        set_source_option(project, "send_date_range", True)
        ranged = []
        for hour in range(1):
            sim.advance(hours=1)
            ranged.append(
                our_run(project, server, f"W1 ranged run {hour + 1}", sim, steps=("load", "transform"))
            )
    hourly_total = summarize([c.total for c in hourly])
    return {
        "description": "2 brief stations x 1 year: initial build, then hourly load + transform cycles",
        "data": kind,
        "stations": len(sim.stations),
        "cycles": cycles,
        "documents_after_initial": counts,
        "initial": initial.as_json(),
        "hourly": {
            "total": hourly_total,
            "load": summarize([c.load for c in hourly]),
            "transform": summarize([c.transform for c in hourly if c.transform]),
            "rows_inserted_per_cycle": [c.as_json()["rows_inserted"] for c in hourly],
        },
        "hourly_over_initial_wall": ratio(hourly_total["wall_s_median"], initial.total.wall_s),
        "elt_run_hourly": {"total": section["hourly_runs"]},
        "hourly_run": section,
        "hourly_run_over_initial_wall": ratio(
            section["hourly_runs"].get("wall_s_median"), initial.total.wall_s
        ),
        "one_process_date_range_hourly": {
            "total": summarize([sample for sample, _ in ranged]),
            "runs": [{"wall_s": round(sample.wall_s, 3), **record} for sample, record in ranged],
        },
    }
