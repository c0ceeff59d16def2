"""W5, memory and time against history length: one station with 1, 2 and 4 years of history in the database.

For each length, the history is built by one initial load + transform from an API window that long (a backfill;
its cost necessarily grows with the rows it lands), then the API goes back to its real 365-day window, a full test pass and a warm-up run (it trains the forecast
model) run, and then a few measured hourly ``elt run`` (the whole job), with the peak RSS of each process and
of the server. "Flat" means the hourly cycle's time
and memory do not grow with the history kept in the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cycle import collection_counts, generated_simulator, make_project, our_cycle, ratio
from bench.harness import BenchServer, run_measured, summarize
from bench.hourly_run import _step_summary, measured_run


def run(
    server: BenchServer, work_dir: Path, years: tuple[float, ...] = (1, 2, 4), cycles: int = 3
) -> dict[str, Any]:
    """One station with ``years`` of history each (fractions allowed: 0.25 = 91 days); the W5 JSON section."""
    lengths = []
    for length in years:
        with generated_simulator(1, window_days=round(365 * length)) as sim:
            project = make_project(work_dir, f"w5_{str(length).replace('.', '_')}y", sim, server)
            initial = our_cycle(project, server, f"W5 {length}y initial")
            counts = collection_counts(server, project.database)
            sim.window_days = 365  # the API's real window: the history now lives in the database only
            run_measured(f"W5 {length}y elt test", project.elt("test"), env=project.env, server=server.process,
                         check=False)  # fmt: skip
            sim.advance(hours=1)
            measured_run(project, server, f"W5 {length}y warm-up run", sim)
            runs = []
            for hour in range(cycles):
                sim.advance(hours=1)
                runs.append(measured_run(project, server, f"W5 {length}y hourly elt run {hour + 1}", sim))
        lengths.append(
            {
                "years": length,
                "documents": counts,
                "initial": initial.as_json(),
                "hourly": {"total": summarize([r["sample"] for r in runs]), "steps": _step_summary(runs)},
            }
        )
    first, last = lengths[0], lengths[-1]
    return {
        "description": "1 generated station with growing history: initial build and hourly `elt run`s",
        "years": list(years),
        "cycles": cycles,
        "lengths": lengths,
        "hourly_wall_growth": ratio(
            last["hourly"]["total"]["wall_s_median"], first["hourly"]["total"]["wall_s_median"]
        ),
        "hourly_peak_rss_growth": ratio(
            last["hourly"]["total"]["peak_rss_mb_max"], first["hourly"]["total"]["peak_rss_mb_max"]
        ),
        "history_growth": ratio(last["years"], first["years"]),
    }
