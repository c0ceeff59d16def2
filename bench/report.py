"""The README "Performance" tables, rendered from a bench result (the committed ``bench/results/latest.json`` by
default; ``python -m bench`` itself writes ``target/bench/latest.json``).

python -m bench.report                    # markdown on stdout
python -m bench.report path/to/result.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.run_all import COMMITTED_OUTPUT


def _s(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _sample_cells(sample: dict[str, Any] | None) -> str:
    """wall s | CPU s (client + server) | peak RSS client / server MiB."""
    if not sample:
        return "– | – | –"
    server_rss = sample.get("server_peak_rss_mb")
    rss = _s(sample.get("peak_rss_mb"), 0) + (f" / {_s(server_rss, 0)}" if server_rss is not None else "")
    return f"{_s(sample.get('wall_s'))} | {_s(sample.get('total_cpu_s'))} | {rss}"


def _summary_cells(summary: dict[str, Any] | None) -> str:
    """The same cells from a ``summarize`` dict (medians, peak = max)."""
    if not summary or not summary.get("n"):
        return "– | – | –"
    server_rss = summary.get("server_peak_rss_mb_max")
    rss = _s(summary.get("peak_rss_mb_max"), 0) + (
        f" / {_s(server_rss, 0)}" if server_rss is not None else ""
    )
    return f"{_s(summary.get('wall_s_median'))} | {_s(summary.get('total_cpu_s_median'))} | {rss}"


def workload_rows(w: dict[str, Any]) -> list[str]:
    """One table row per measured figure."""
    rows = []
    if "W1" in w:
        w1 = w["W1"]
        size = f"{w1['stations']} stations ({w1['data']}) x 1 year"
        rows.append(
            f"| W1 | initial build (load + transform) | {size} | {_sample_cells(w1['initial']['total'])} |"
        )
        rows.append(
            f"| W1 | hourly cycle, median of {w1['cycles']} (load + transform) | {size} | "
            f"{_summary_cells(w1['hourly']['total'])} |"
        )
        runs = w1.get("elt_run_hourly", {}).get("total")
        if runs and runs.get("n"):
            rows.append(
                f"| W1 | hourly `elt run` (whole job), median of {runs['n']} | {size} | {_summary_cells(runs)} |"
            )
        ranged = w1.get("one_process_date_range_hourly", {}).get("total")
        if ranged and ranged.get("n"):
            rows.append(
                f"| W1 | hourly `elt run --step load --step transform`, `send_date_range: true`, median of "
                f"{ranged['n']} | {size} | {_summary_cells(ranged)} |"
            )
    if "W2" in w:
        w2 = w["W2"]
        size = f"{w2['stations']} stations x 1 year"
        rows.append(
            f"| W2 | full build (load + transform) | {size} | {_sample_cells(w2['full_build']['total'])} |"
        )
        rows.append(
            f"| W2 | hourly cycle, median of {w2['cycles']} | {size} | {_summary_cells(w2['hourly']['total'])} |"
        )
    if "W3" in w:
        for key, section in w["W3"].items():
            if not key.startswith("at_"):
                continue
            size = f"{section['stations']} stations x 1 year"
            for variant, label in (("daily_only", "daily averages only"), ("with_raw", "raw rows + daily")):
                rows.append(
                    f"| W3 | seed approach per hour, {label} | {size} | {_summary_cells(section.get(variant))} |"
                )
    if "W4" in w:
        w4 = w["W4"]
        raw = w4["raw_insert_many"]
        rows.append(
            f"| W4 | our initial load: {_s(w4.get('ours_rows_per_s_in_run'), 0)} rows/s "
            f"(raw insert_many of the same documents: {_s(raw['with_unique_index'].get('docs_per_s'), 0)}/s with "
            f"the unique index, {_s(raw['id_only'].get('docs_per_s'), 0)}/s without) | "
            f"{w4['stations']} stations x 1 year | {_sample_cells(w4['load'])} |"
        )
    if "W5" in w:
        for length in w["W5"]["lengths"]:
            size = f"1 station x {length['years']:g} year(s)"
            rows.append(f"| W5 | initial build | {size} | {_sample_cells(length['initial']['total'])} |")
            rows.append(
                f"| W5 | hourly cycle, median of {w['W5']['cycles']} | {size} | "
                f"{_summary_cells(length['hourly']['total'])} |"
            )
    return rows


def step_rows(w: dict[str, Any]) -> list[str]:
    """Per step of the hourly ``elt run`` (medians): wall, client CPU, server CPU; then the floor."""
    rows = []
    for name in ("W1", "W2"):
        section = w.get(name, {}).get("hourly_run")
        if not section:
            continue
        stations = w[name].get("stations")
        for step, m in section.get("hourly_steps", {}).items():
            note = f" ({m['reason'][:60]})" if m.get("status") == "skipped" and m.get("reason") else ""
            rows.append(f"| {stations} | {step}{note} | {_s(m.get('wall_s_median'), 2)} | "
                        f"{_s(m.get('client_cpu_s_median'), 2)} | {_s(m.get('server_cpu_s_median'), 2)} |")  # fmt: skip
        total = section.get("hourly_runs", {})
        rows.append(f"| {stations} | **whole `elt run` process** (median of {total.get('n')}) | "
                    f"{_s(total.get('wall_s_median'), 2)} | {_s(total.get('cpu_s_median'), 2)} | "
                    f"{_s(total.get('server_cpu_s_median'), 2)} |")  # fmt: skip
        fl = section.get("floor", {})
        runs = fl.get("runs") or [{}]
        rows.append(f"| {stations} | hand-written floor (staging of the changed hours + daily of their days) | "
                    f"{_s(fl.get('wall_s_median'), 2)} | {_s(runs[-1].get('client_cpu_s'), 2)} | "
                    f"{_s(runs[-1].get('server_cpu_s'), 2)} |")  # fmt: skip
        rows.append(f"| {stations} | ratio hourly run / floor (wall; CPU) | {_ratio(section.get('hourly_over_floor_wall'))} | "
                    f"{_ratio(section.get('hourly_over_floor_cpu'))} (total) | |")  # fmt: skip
    return rows


def seed_rows(w: dict[str, Any]) -> list[str]:
    """W3: the seed's cheaper variant per hour against each of our hourly cycles."""
    rows = []
    for key, section in w.get("W3", {}).items():
        if not key.startswith("at_"):
            continue
        seed_wall = min(section["daily_only"]["wall_s_median"], section["with_raw"]["wall_s_median"])
        for entry in section.get("vs_ours", []):
            rows.append(
                f"| {section['stations']} | {entry['ours']} | {_s(entry['ours_wall_s_median'])} | {_s(seed_wall)} | "
                f"{_ratio(entry['seed_over_ours_wall'])} | {_ratio(entry['seed_over_ours_cpu'])} |"
            )
    return rows


def render(report: dict[str, Any]) -> str:
    """The markdown of the Performance section's tables."""
    machine, server = report["machine"], report.get("server", {})
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, {machine['os']}, "
        f"Python {machine['python']} (1-minute load average {machine.get('load_average_1m')} at the start, "
        f"{report.get('load_average_1m_at_end')} at the end). Server: {server.get('name')} {server.get('version')}"
        f"{' (embedded daemon, measured)' if server.get('name') == 'SecantusDB' else ''}. "
        f"Commit {report.get('commit')}, {report.get('started_at')}; the bench took {report.get('total_wall_s')} s.",
        "",
        f"Reproduce: `{report.get('command', 'python -m bench').strip()}`",
        "",
        "| | what | size | wall s | CPU s (client + server) | peak RSS MiB (client / server) |",
        "|---|---|---|---:|---:|---:|",
        *workload_rows(report.get("workloads", {})),
        "",
        "The hourly `elt run`, step by step (medians; CPU seconds of the `elt run` process and of the server):",
        "",
        "| stations | step | wall s | client CPU s | server CPU s |",
        "|---:|---|---:|---:|---:|",
        *step_rows(report.get("workloads", {})),
        "",
        "Seed approach per hour against ours (ratio > 1: ours is cheaper):",
        "",
        "| stations | our hourly cycle | ours wall s | seed wall s | seed / ours (wall) | seed / ours (CPU) |",
        "|---:|---|---:|---:|---:|---:|",
        *seed_rows(report.get("workloads", {})),
        "",
        "| target | measured | met | at |",
        "|---|---:|---|---|",
    ]
    for target in report.get("targets", {}).values():
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['goal']} | {_ratio(target['measured'])} | {met} | {target['at']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of a result file."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else COMMITTED_OUTPUT
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
