"""W4, load throughput: our initial ``elt load`` against the server's raw ``insert_many`` rate, same run.

Our rate is rows inserted per second of the load's own run time (fetch over HTTP, JSON parse, validation,
hashing, diff against stored rows, bulk writes) and, more conservatively, per second of the whole process
(interpreter start-up included). The raw rate is ``insert_many`` of the very documents our load wrote, already
in memory, into a fresh collection: with only ``_id`` and with the same unique (station_id, ts) index.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.cycle import CycleResult, generated_simulator, last_json_line, make_project, ratio
from bench.harness import BenchServer, run_measured
from bench.project import write_project


def run(
    server: BenchServer, work_dir: Path, stations: int = 10, shared: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Our initial load of ``stations`` x 1 year, then the raw insert rate of the same documents.

    When W2 ran in this bench (``shared``), its full-build load and database are used instead of a new load."""
    shared = shared or {}
    if "w2_full_build" in shared:
        cycle: CycleResult = shared["w2_full_build"]
        load, report, database, stations = (
            cycle.load,
            cycle.load_json,
            shared["w2_database"],
            shared["w2_stations"],
        )
        env = write_project(
            work_dir / "w4", stations=[], base_url="", mongo_uri=server.uri, database=database
        ).env
    else:
        with generated_simulator(stations) as sim:
            project = make_project(work_dir, "w4", sim, server)
            load = run_measured(
                "W4 load", project.elt("load", "--json"), env=project.env, server=server.process
            )
        report, database, env = last_json_line(load.stdout), project.database, project.env
    inserted = sum(s.get("inserted", 0) for s in report.get("stations", []))
    received = sum(s.get("received", 0) for s in report.get("stations", []))
    # The load reports received rows per second of its own run: that gives the run's seconds.
    load_seconds = received / report["rows_per_second"] if report.get("rows_per_second") else None
    raw = {}
    for unique_index in (False, True):
        command = [sys.executable, "-m", "bench.raw_insert", "--database", database]
        if unique_index:
            command.append("--unique-index")
        sample = run_measured("W4 raw insert_many", command, env=env, server=server.process)
        raw["with_unique_index" if unique_index else "id_only"] = {
            **last_json_line(sample.stdout),
            "process": sample.as_json(),
        }
    ours_in_run = inserted / load_seconds if load_seconds else None
    ours_process = inserted / load.wall_s if load.wall_s else None
    raw_rate = raw["with_unique_index"].get("docs_per_s")
    return {
        "description": "initial load of N stations x 1 year vs insert_many of the same documents",
        "stations": stations,
        "reused_w2_full_build": "w2_full_build" in shared,
        "rows_inserted": inserted,
        "load": load.as_json(),
        "load_reported_rows_per_second": report.get("rows_per_second"),
        "load_run_seconds": round(load_seconds, 3) if load_seconds else None,
        "ours_rows_per_s_in_run": round(ours_in_run, 1) if ours_in_run else None,
        "ours_rows_per_s_process": round(ours_process, 1) if ours_process else None,
        "raw_insert_many": raw,
        "ours_over_raw_in_run": ratio(ours_in_run, raw_rate),
        "ours_over_raw_process": ratio(ours_process, raw_rate),
        "ours_over_raw_id_only_in_run": ratio(ours_in_run, raw["id_only"].get("docs_per_s")),
    }
