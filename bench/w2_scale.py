"""W2, scale: N generated stations x 1 year (100 x 1 year = ~876k rows): the initial build, then the whole
hourly ``elt run`` step by step against the hand-written floor (``bench/hourly_run.py``), and the ratios hourly
run / full build and hourly run / floor.

"Full build" is the initial ``elt load`` + ``elt transform`` of the whole year. The figure the 5 % target is
about is the hourly cycle (load + transform) over that full build at 100 stations; the default size is smaller
(``--stations 100`` reproduces the full size) and the JSON says which size it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cycle import collection_counts, generated_simulator, make_project, our_cycle, ratio
from bench.harness import BenchServer
from bench.hourly_run import hourly_section


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
        section = hourly_section(project, server, sim, cycles, "W2")
    total = section["hourly_runs"]
    return {
        "description": f"{stations} generated stations x 1 year: full build, then hourly `elt run`s",
        "stations": stations,
        "cycles": cycles,
        "documents_after_full_build": counts,
        "full_build": full.as_json(),
        "hourly": {"total": total},
        "hourly_run": section,
        "hourly_over_full_wall": ratio(total.get("wall_s_median"), full.total.wall_s),
        "hourly_over_full_cpu": ratio(total.get("total_cpu_s_median"), full.total.total_cpu_s),
        "hourly_over_floor_wall": section["hourly_over_floor_wall"],
        "hourly_over_floor_cpu": section["hourly_over_floor_cpu"],
    }
