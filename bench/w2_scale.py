"""W2, scale: N generated stations x 1 year (100 x 1 year = ~876k rows): the initial build, then hourly
incremental cycles, and the ratio hourly / full build.

"Full build" is the initial ``elt load`` + ``elt transform`` of the whole year. The figure the 5 % target is
about is the hourly cycle (load + transform) over that full build at 100 stations; the default size is smaller
(``--stations 100`` reproduces the full size) and the JSON says which size it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cycle import collection_counts, generated_simulator, make_project, our_cycle, ratio
from bench.harness import BenchServer, summarize


def run(
    server: BenchServer,
    work_dir: Path,
    stations: int = 20,
    cycles: int = 3,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Initial build of ``stations`` x 1 year, then ``cycles`` hourly cycles; returns the W2 JSON section.

    ``shared`` receives the full build's load (``CycleResult``) and database, for W4 to reuse."""
    with generated_simulator(stations) as sim:
        project = make_project(work_dir, f"w2_{stations}", sim, server)
        full = our_cycle(project, server, "W2 full build")
        if shared is not None:
            shared.update(w2_full_build=full, w2_database=project.database, w2_stations=stations)
        counts = collection_counts(server, project.database)
        hourly = []
        for hour in range(cycles):
            sim.advance(hours=1)
            hourly.append(our_cycle(project, server, f"W2 hour {hour + 1}"))
    total = summarize([c.total for c in hourly])
    load = summarize([c.load for c in hourly])
    transform = summarize([c.transform for c in hourly if c.transform])
    return {
        "description": f"{stations} generated stations x 1 year: full build, then hourly incremental cycles",
        "stations": stations,
        "cycles": cycles,
        "documents_after_full_build": counts,
        "full_build": full.as_json(),
        "hourly": {"total": total, "load": load, "transform": transform},
        "hourly_over_full_wall": ratio(total["wall_s_median"], full.total.wall_s),
        "hourly_over_full_cpu": ratio(total["total_cpu_s_median"], full.total.total_cpu_s),
        "transform_hourly_over_full_wall": (
            ratio(transform.get("wall_s_median"), full.transform.wall_s) if full.transform else None
        ),
    }
