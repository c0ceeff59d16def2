"""What a person sees during and after ``elt load``: a progress bar per station, then a summary table."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from elt.load.task import ROW_COUNTS, LoadResult, StationLoadResult


class RichLoadProgress:
    """A ``LoadProgress`` drawing one bar per station (fetching, then landing N rows, then ok/failed)."""

    def __init__(self, console: Console, station_ids: list[str]):
        self.progress = Progress(
            TextColumn("{task.fields[station]:>10}"),
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {
            sid: self.progress.add_task("waiting", total=None, station=sid) for sid in station_ids
        }

    def __enter__(self) -> RichLoadProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, station_id: str, description: str, total: int | None = None) -> None:
        """A station enters a phase."""
        self.progress.update(self._tasks[station_id], description=description, total=total, completed=0)

    def advance(self, station_id: str, rows: int) -> None:
        """More rows landed."""
        self.progress.advance(self._tasks[station_id], rows)

    def done(self, outcome: StationLoadResult) -> None:
        """A station finished (ok or failed)."""
        task = self._tasks[outcome.station_id]
        total = self.progress.tasks[self._tasks[outcome.station_id]].total or 0
        self.progress.update(task, description=outcome.status, total=total or 1, completed=total or 1)


def summary_table(result: LoadResult) -> Table:
    """One row per station: rows received, changes, rejects, time and throughput, and the error if any."""
    table = Table(title=f"elt load · batch {result.batch_id}", title_justify="left")
    for name in ("station", "status", *ROW_COUNTS, "s", "rows/s"):
        table.add_column(name, justify="left" if name in ("station", "status") else "right")
    table.add_column("error / notes", overflow="fold", max_width=60)
    for s in result.stations:
        rate = f"{s.received / s.seconds:,.0f}" if s.seconds > 0 else "-"
        status = f"[green]{s.status}[/]" if s.status == "ok" else f"[red]{s.status}[/]"
        notes = s.error or _notes(s)
        table.add_row(
            s.station_id, status, f"{s.received:,}", f"{s.inserted:,}", f"{s.updated:,}", f"{s.unchanged:,}",
            f"{s.rejected:,}", f"{s.seconds:.1f}", rate, notes,
        )  # fmt: skip
    received = sum(s.received for s in result.stations)
    table.caption = f"{received:,} rows in {result.seconds:.1f} s = {result.rows_per_second:,.0f} rows/s"
    return table


def _notes(outcome: StationLoadResult) -> str:
    parts = []
    if outcome.duplicates:
        parts.append(f"{outcome.duplicates} exact duplicates collapsed")
    if outcome.stale:
        parts.append(f"{outcome.stale} older than stored (kept stored)")
    if outcome.outside_window:
        landed = "landed" if outcome.outside_window_landed else "not landed"
        parts.append(f"{outcome.outside_window} outside --since/--until ({landed})")
    if outcome.unconfirmed_provisional:
        parts.append(f"{outcome.unconfirmed_provisional} provisional hours not re-delivered")
    return "; ".join(parts)
