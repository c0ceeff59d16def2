"""Run the benchmark workloads W1..W5 and print one JSON document (also saved to ``target/bench/latest.json``).

    python -m bench                      # defaults: the whole bench in well under 15 minutes on 2 cores
    python -m bench --w2-stations 100    # W2 at the full 100 stations x 1 year (~876k rows; long on SecantusDB)
    python -m bench --only W1,W3         # a subset
    python -m bench --only W6 --w6-stations 100  # W6 scale (not in the default set: a full year per station)
    python -m bench --refresh-committed  # also replace the committed bench/results/latest.json (README figures)

The result goes to ``target/`` (git-ignored) by default, so a bench run leaves ``git status`` clean; only
``--refresh-committed`` rewrites the committed ``bench/results/latest.json``.

The database is ``MONGO_URI`` when set, else a SecantusDB daemon started for the run (its CPU and memory are
then measured too). Progress goes to stderr; the JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import w1_hourly, w2_scale, w3_seed, w4_throughput, w5_history, w6_scale
from bench.cycle import transform_available
from bench.harness import REPO_ROOT, bench_server, git_commit, machine_info

log = logging.getLogger("bench")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
#: What ``python -m bench`` runs without ``--only`` (W6 is long: asked for by name).
DEFAULT_WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
DEFAULT_OUTPUT = REPO_ROOT / "target" / "bench" / "latest.json"
#: The committed result the README's Performance section quotes (written only with ``--refresh-committed``).
COMMITTED_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.json"
#: Memory counts as flat when 4x the history costs the hourly cycle at most this much more peak RSS.
FLAT_TOLERANCE = 1.25


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (every size is a flag)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DEFAULT_WORKLOADS), help="Comma-separated workloads to run "
                        f"(default {','.join(DEFAULT_WORKLOADS)}; W6 only when named).")  # fmt: skip
    parser.add_argument(
        "--w1-cycles", type=int, default=3, help="W1 hourly load + transform cycles after the initial build."
    )
    parser.add_argument(
        "--w1-run-cycles", type=int, default=3, help="W1 measured hourly `elt run` (whole job) cycles."
    )
    parser.add_argument("--w2-stations", type=int, default=4, help="W2 stations (100 = the full size).")
    parser.add_argument(
        "--w2-cycles", type=int, default=3, help="W2 measured hourly `elt run`s after the build."
    )
    parser.add_argument(
        "--w3-hours", type=int, default=3, help="W3 hourly runs of the seed approach per size."
    )
    parser.add_argument(
        "--w4-stations", type=int, default=4, help="W4 stations loaded for throughput (when W2 did not run)."
    )
    parser.add_argument("--w5-years", default="1,2,4", help="W5 history lengths in years.")
    parser.add_argument("--w5-cycles", type=int, default=2, help="W5 hourly `elt run`s per history length.")
    parser.add_argument("--w6-stations", type=int, default=5, help="W6 stations (the issue: 100, 300, 1000).")
    parser.add_argument("--w6-days", type=int, default=365, help="W6 days of history per station.")
    parser.add_argument(
        "--w6-concurrency", type=int, default=4, help="W6 parallel fetches (source.concurrency)."
    )
    parser.add_argument("--w6-latency", default="12,127", help="W6 fetch delay range, seconds (min,max).")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Where to save the JSON.")
    parser.add_argument(
        "--refresh-committed", action="store_true",
        help=f"Also write the committed {COMMITTED_OUTPUT.relative_to(REPO_ROOT)} (what README quotes).",
    )  # fmt: skip
    parser.add_argument("--no-save", action="store_true", help="Print the JSON only.")
    parser.add_argument("--keep-work-dir", action="store_true", help="Keep the temporary projects and data.")
    return parser.parse_args(argv)


def targets(workloads: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against what this run measured (``met`` is None when not measured)."""
    w2, w3, w4, w5 = (workloads.get(k, {}) for k in ("W2", "W3", "W4", "W5"))
    seed = w3.get("at_W2_size") or w3.get("at_W1_size") or {}

    def at(stations: Any) -> str:
        return f"{stations} stations" if stations else "–"

    def check(measured: float | None, ok: bool, goal: str, where: str) -> dict[str, Any]:
        return {"goal": goal, "measured": measured, "met": None if measured is None else ok, "at": where}

    hourly_over_full = w2.get("hourly_over_full_wall")
    seed_wall, seed_cpu = seed.get("seed_over_ours_wall"), seed.get("seed_over_ours_cpu")
    load_ratio = w4.get("ours_over_raw_in_run")
    rss_growth = w5.get("hourly_peak_rss_growth")
    over_floor = w2.get("hourly_over_floor_wall")
    history_growth = w5.get("hourly_wall_growth")
    small_seed = (w3.get("at_W1_size") or {}).get("seed_over_ours_wall")
    return {
        "hourly_vs_full_build": check(
            hourly_over_full, (hourly_over_full or 0) <= 0.05,
            "hourly `elt run` <= 5 % of a full build (wall; issue: at 20 and 100 stations)", at(w2.get("stations")),
        ),
        "hourly_vs_floor": check(
            over_floor, (over_floor or 99) <= 5,
            "hourly `elt run` within 5x of the hand-written floor (wall)", at(w2.get("stations")),
        ),
        "hourly_vs_history": check(
            history_growth, (history_growth or 99) <= 1.25,
            "hourly `elt run` at the longest history <= 1.25x the shortest (wall)",
            f"{w5.get('years', ['–'])[0]} -> {w5.get('years', ['–'])[-1]} years",
        ),
        "hourly_vs_seed_small": check(
            small_seed, (small_seed or 0) >= 1 / 3,
            "at 2 stations, hourly `elt run` within 3x of the seed approach per hour (seed / ours >= 0.33, wall)",
            at((w3.get("at_W1_size") or {}).get("stations")),
        ),
        "cheaper_than_seed_wall": check(
            seed_wall, (seed_wall or 0) >= 10,
            ">= 10x cheaper per hourly cycle than the seed approach (wall)", at(seed.get("stations")),
        ),
        "cheaper_than_seed_cpu": check(
            seed_cpu, (seed_cpu or 0) >= 10,
            ">= 10x cheaper per hourly cycle than the seed approach (CPU, client + server)", at(seed.get("stations")),
        ),
        "load_vs_raw_insert": check(
            load_ratio, (load_ratio or 0) >= 0.5,
            "load >= 50 % of the raw insert_many rate (same documents, unique index)", at(w4.get("stations")),
        ),
        "memory_flat_in_history": check(
            rss_growth, (rss_growth or 99) <= FLAT_TOLERANCE,
            f"hourly peak RSS grows <= {FLAT_TOLERANCE}x from shortest to longest history",
            f"{w5.get('years', ['–'])[0]} -> {w5.get('years', ['–'])[-1]} years",
        ),
    }  # fmt: skip


def ours_hourly(workloads: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Our hourly-cycle summaries W3 compares the seed approach with (the default cycle first)."""
    ours: dict[str, dict[str, Any]] = {}
    if "W1" in workloads:
        w1 = workloads["W1"]
        ours["W1"] = {
            "elt run (whole job: load, transform, test, forecast)": w1["elt_run_hourly"]["total"],
            "elt load + elt transform (2 processes)": w1["hourly"]["total"],
            "elt run --step load --step transform, send_date_range": w1["one_process_date_range_hourly"][
                "total"
            ],
        }
    if "W2" in workloads:
        ours["W2"] = {
            "elt run (whole job: load, transform, test, forecast)": workloads["W2"]["hourly"]["total"]
        }
    return ours


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected workloads; returns the report."""
    selected = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(selected) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="elt-bench-"))
    report: dict[str, Any] = {
        "bench": "airqino-elt",
        "commit": git_commit(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "sizes": {k: v for k, v in vars(args).items() if k.startswith(("w1", "w2", "w3", "w4", "w5", "w6"))},
        "transform_available": transform_available(),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
    }
    workloads: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    try:
        with bench_server(work_dir) as server:
            report["server"] = server.info
            steps = {
                "W1": lambda: w1_hourly.run(server, work_dir, cycles=args.w1_cycles, run_cycles=args.w1_run_cycles),
                "W2": lambda: w2_scale.run(
                    server, work_dir, stations=args.w2_stations, cycles=args.w2_cycles, shared=shared
                ),
                "W3": lambda: w3_seed.run(
                    server, work_dir, hours=args.w3_hours,
                    scale_stations=args.w2_stations if "W2" in selected else None,
                    ours=ours_hourly(workloads),
                ),
                "W4": lambda: w4_throughput.run(server, work_dir, stations=args.w4_stations, shared=shared),
                "W5": lambda: w5_history.run(
                    server, work_dir, years=tuple(float(y) for y in args.w5_years.split(",")), cycles=args.w5_cycles
                ),
                "W6": lambda: w6_scale.run(
                    server, work_dir, stations=args.w6_stations, days=args.w6_days, concurrency=args.w6_concurrency,
                    latency=tuple(float(x) for x in args.w6_latency.split(",")),  # type: ignore[arg-type]
                ),
            }  # fmt: skip
            for name in WORKLOADS:
                if name not in selected:
                    continue
                log.info("%s ...", name)
                step_started = time.perf_counter()
                workloads[name] = steps[name]()
                workloads[name]["bench_wall_s"] = round(time.perf_counter() - step_started, 1)
                log.info("%s done in %.0f s", name, workloads[name]["bench_wall_s"])
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    report["workloads"] = workloads
    report["targets"] = targets(workloads)
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    # SIGTERM unwinds like Ctrl-C, so the database server started for the bench is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if not args.no_save:
        outputs = [args.output] + ([COMMITTED_OUTPUT] if args.refresh_committed else [])
        for output in outputs:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text + "\n")
            log.info("saved %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
