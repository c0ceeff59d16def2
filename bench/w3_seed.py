"""W3, the seed approach (``bench/seed_approach.py``) per hour, on the same server and data as W1 and W2.

Each hour is one process run of the seed script (as cron would start it): fetch the whole year of every station,
pandas daily group-by, ``insert_many``. Two variants are measured: daily averages only (what most public
solutions store) and with the raw hourly rows too. The ratio compares our hourly cycle (W1/W2 medians) with the
cheaper variant, so the comparison favours the baseline.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from bench.cycle import generated_simulator, ratio, real_or_generated_simulator
from bench.harness import BenchServer, Sample, run_measured, summarize
from bench.project import write_project
from bench.seed_approach import DAILY_COLLECTION
from elt.simulator import AirQinoSimulator


def seed_hours(
    sim: AirQinoSimulator, server: BenchServer, work_dir: Path, name: str, hours: int, with_raw: bool
) -> tuple[list[Sample], dict[str, int]]:
    """``hours`` hourly runs of the seed script; returns the samples and the daily documents it left behind."""
    database = f"bench_{name}"
    client = server.client()
    client.drop_database(database)
    env = write_project(
        work_dir / name, stations=[], base_url=sim.base_url, mongo_uri=server.uri, database=database
    ).env
    command = [
        sys.executable,
        "-m",
        "bench.seed_approach",
        "--base-url",
        sim.base_url,
        "--database",
        database,
    ]
    for station_id in sim.stations:
        command += ["--station", station_id]
    if with_raw:
        command.append("--with-raw")
    samples = []
    for hour in range(hours):
        sim.advance(hours=1)
        samples.append(
            run_measured(
                f"{name} hour {hour + 1}", command, env=env, server=server.process, cwd=work_dir.parent
            )
        )
    daily = client[database][DAILY_COLLECTION]
    unique = list(daily.aggregate([{"$group": {"_id": {"s": "$station_id", "d": "$date"}}}, {"$count": "n"}]))
    counts = {
        "documents": daily.estimated_document_count(),
        "distinct_station_days": unique[0]["n"] if unique else 0,
    }
    client.close()
    return samples, counts


def run(
    server: BenchServer,
    work_dir: Path,
    hours: int = 3,
    scale_stations: int | None = 20,
    ours: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The seed per hour on W1's two stations and on ``scale_stations`` generated ones; ratios against ``ours``
    (``{"W1": {label: hourly summary, ...}, "W2": {...}}``, the default hourly cycle first)."""
    ours = ours or {}
    sizes: list[tuple[str, Any]] = [("W1", lambda: real_or_generated_simulator(hours))]
    if scale_stations:
        sizes.append(("W2", lambda: _plain(generated_simulator(scale_stations))))
    result: dict[str, Any] = {"description": __doc__.split("\n\n")[0].replace("\n", " "), "hours": hours}
    for workload, make_sim in sizes:
        section: dict[str, Any] = {}
        for variant, with_raw in (("daily_only", False), ("with_raw", True)):
            with make_sim() as (sim, kind):
                name = f"w3_{workload.lower()}_{variant}"
                samples, daily = seed_hours(sim, server, work_dir, name, hours, with_raw)
                section.update(stations=len(sim.stations), data=kind)
            section[variant] = summarize(samples)
            section[variant]["daily_documents_after"] = daily["documents"]
            section[variant]["duplicate_daily_documents"] = (
                daily["documents"] - daily["distinct_station_days"]
            )
        seed_wall = min(section["daily_only"]["wall_s_median"], section["with_raw"]["wall_s_median"])
        seed_cpu = min(section["daily_only"]["total_cpu_s_median"], section["with_raw"]["total_cpu_s_median"])
        section["vs_ours"] = [
            {
                "ours": label,
                "ours_wall_s_median": summary["wall_s_median"],
                "ours_total_cpu_s_median": summary["total_cpu_s_median"],
                "seed_over_ours_wall": ratio(seed_wall, summary["wall_s_median"]),
                "seed_over_ours_cpu": ratio(seed_cpu, summary["total_cpu_s_median"]),
            }
            for label, summary in ours.get(workload, {}).items()
            if summary.get("n")
        ]
        if section["vs_ours"]:  # the first entry is the default hourly cycle
            section["seed_over_ours_wall"] = section["vs_ours"][0]["seed_over_ours_wall"]
            section["seed_over_ours_cpu"] = section["vs_ours"][0]["seed_over_ours_cpu"]
        result[f"at_{workload}_size"] = section
    return result


@contextlib.contextmanager
def _plain(context: contextlib.AbstractContextManager[AirQinoSimulator]):  # type: ignore[no-untyped-def]
    with context as sim:
        yield sim, "generated"
