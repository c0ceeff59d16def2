"""Helpers shared by the ``elt load`` tests: project setup, CLI runs, synthetic archives, collection digests."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Fields that legitimately differ between two runs that land the same data: when a write happened and which
#: run did it (``_loaded_at``, ``_batch_id``, ``_replaced_by_batch``, ``_rejected_at``). Every other field,
#: including ``_first_seen``/``_last_seen``/``_valid_from``/``_valid_to`` (source fetch times), must be equal.
VOLATILE_FIELDS = frozenset({"_loaded_at", "_batch_id", "_replaced_by_batch", "_rejected_at"})
LOAD_COLLECTIONS = ("raw_airqino_hourly", "raw_airqino_history", "raw_airqino_rejects")
STATIONS = ("283164601", "283181971")


def configure_source(project_dir: Path, **source: Any) -> None:
    """Set keys of the ``source:`` block of the project's config/elt.yml (e.g. fast retries for tests)."""
    path = project_dir / "config" / "elt.yml"
    config = yaml.safe_load(path.read_text())
    config["source"].update(source)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def fast_source(project_dir: Path, base_url: str, **overrides: Any) -> None:
    """Point the project at ``base_url`` with millisecond backoff and a short timeout."""
    settings = {
        "base_url": base_url,
        "retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5,
    }
    configure_source(project_dir, **{**settings, **overrides})


@dataclass
class CliRun:
    """Exit code, parsed ``--json`` stdout (if any) and stderr of one ``elt`` call."""

    exit_code: int
    result: dict[str, Any] | None
    stderr: str

    def station(self, station_id: str) -> dict[str, Any]:
        """The ``--json`` entry of a station."""
        assert self.result is not None, self.stderr
        return next(s for s in self.result["stations"] if s["station_id"] == station_id)


def run_load(project_dir: Path, *args: str) -> CliRun:
    """``elt --project-dir P load --json ARGS`` in-process."""
    runner = CliRunner()
    outcome = runner.invoke(main, ["--project-dir", str(project_dir), "load", "--json", *args])
    stdout = outcome.stdout.strip()
    result = json.loads(stdout.splitlines()[-1]) if stdout.startswith("{") else None
    if outcome.exception and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return CliRun(outcome.exit_code, result, outcome.stderr)


def run_load_process(project_dir: Path, *args: str, timeout: float = 300) -> CliRun:
    """``python -m elt ... load --json ARGS`` in a subprocess: for big loads, so the CLI and the in-process
    test server do not share one GIL (environment as the test set it: MONGO_URI, AIRQINO_*)."""
    command = [sys.executable, "-m", "elt", "--project-dir", str(project_dir), "load", "--json", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    stdout = done.stdout.strip()
    result = json.loads(stdout.splitlines()[-1]) if stdout.startswith("{") else None
    return CliRun(done.returncode, result, done.stderr)


def collection_digests(db: Database, volatile: frozenset[str] = frozenset()) -> dict[str, str]:
    """sha256 of every load collection's documents (sorted by ``_id``), without the ``volatile`` fields."""
    digests = {}
    for name in LOAD_COLLECTIONS:
        digest = hashlib.sha256()
        for doc in db[name].find({}, sort=[("_id", 1)]):
            kept = {k: v for k, v in doc.items() if k not in volatile}
            digest.update(json.dumps(kept, sort_keys=True, default=str).encode())
        digests[name] = f"{db[name].count_documents({})}:{digest.hexdigest()[:16]}"
    return digests


def synthetic_rows(end: datetime, hours: int, seed: int, revise: float = 0.0) -> list[dict[str, Any]]:
    """``hours`` hourly rows ending at ``end`` (inclusive) in the API's shape, ~1 % of hours missing.

    Values depend only on (seed, hour), so two windows agree on their overlap; ``revise`` is the share of
    rows whose CO is rewritten (negative -> 0.0 style revisions) in this snapshot.
    """
    rows = []
    for i in range(hours):
        ts = end - timedelta(hours=hours - 1 - i)
        rng = random.Random(f"{seed}:{ts:%Y%m%d%H}")
        if rng.random() < 0.01:
            continue
        row = {"timestamp": f"{ts:%Y-%m-%d %H:%M:%S}", "CO": round(rng.uniform(-0.5, 1.5), 4),
               "T": round(rng.uniform(22, 33), 3), "T. int.": round(rng.uniform(300, 420), 3),
               "NO2": round(rng.uniform(5, 40), 3), "O3": round(rng.uniform(0, 60), 3),
               "PM10": round(rng.uniform(5, 80), 3), "PM2.5": round(rng.uniform(2, 50), 3)}  # fmt: skip
        if rng.random() > 0.02:
            row["RH"] = round(rng.uniform(40, 95), 3)
        if revise and random.Random(f"rev:{seed}:{ts:%Y%m%d%H}").random() < revise:
            row["CO"] = 0.0 if row["CO"] < 0 else round(row["CO"] + 0.01, 4)
        rows.append(row)
    return rows


def write_archive(directory: Path, end: datetime, hours: int = 24 * 365, revise: float = 0.0) -> Path:
    """One ``<station_id>.json`` full response per station, ending at ``end``; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed, station_id in enumerate(STATIONS):
        payload = {
            "header": {"station_name": f"SMART{188 + seed}"},
            "data": synthetic_rows(end, hours, seed, revise),
        }
        (directory / f"{station_id}.json").write_text(json.dumps(payload))
    return directory


ARCHIVE_END = datetime(2024, 9, 9, 10, tzinfo=timezone.utc)
