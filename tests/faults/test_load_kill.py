"""kill -9 during ``elt load`` of 2 stations x 1 year, then a rerun: the database equals a clean load.

Two archives (``--from-dir``, generated here): A = a year ending 2024-09-09 10:00, B = a year ending three days
later in which the API rewrote ~5 % of the hours (history entries, replaces, provisional -> final). Each trial
pair kills the load of A on a fresh database (inserts only), reruns it, then (in the first two pairs) kills
the load of B (history upserts before the raw replaces they belong to) and reruns that: five kill points. The kill moment is chosen from what the database
shows, so the process really dies mid-write: after a random share of the rows landed, or right after the
first history entry (before its raw replace).

Compared: every field of ``raw_airqino_hourly``, ``raw_airqino_history`` and ``raw_airqino_rejects``
except the write metadata ``_loaded_at``/``_batch_id``/``_replaced_by_batch``/``_rejected_at`` (which run
wrote a row, and when, legitimately differs); ``load_batches`` is left out because it records every run,
including the killed one (its audit row stays ``running``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from tests.load_helpers import (
    ARCHIVE_END,
    REPO_ROOT,
    VOLATILE_FIELDS,
    collection_digests,
    write_archive,
)

pytestmark = pytest.mark.faults

#: Each pair kills the first load once and (except the last) the second load once: 5 kill points.
PAIRS = 3
SEED = int(os.environ.get("ELT_KILL_SEED", "20240909"))


def elt_load(project_dir: Path, database: str, archive: Path) -> subprocess.Popen:
    """Start ``python -m elt load --from-dir archive`` on ``database``."""
    env = {**os.environ, "ELT_DATABASE": database}
    command = [
        sys.executable,
        "-m",
        "elt",
        "--project-dir",
        str(project_dir),
        "-q",
        "load",
        "--from-dir",
        str(archive),
    ]
    return subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def load_to_end(project_dir: Path, database: str, archive: Path) -> None:
    process = elt_load(project_dir, database, archive)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr


def _count_reaches(collection: Collection, threshold: float) -> Callable[[], int | None]:
    """A probe returning the collection's size once it reaches ``threshold`` (else None)."""

    def probe() -> int | None:
        count = collection.estimated_document_count()
        return count if count >= threshold else None

    return probe


def kill_when(process: subprocess.Popen, probe: Callable[[], int | None], timeout: float = 240) -> int:
    """SIGKILL ``process`` as soon as ``probe()`` returns a count; that count (-1 if it finished first)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        landed = probe()
        if landed is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return landed
        time.sleep(0.03)
    process.wait()
    return -1


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kill-archives")
    first = write_archive(root / "a", ARCHIVE_END)
    second = write_archive(root / "b", ARCHIVE_END + timedelta(hours=72), revise=0.05)
    return first, second


def test_kill_9_at_random_points_then_rerun_equals_a_clean_load(
    project_dir: Path, mongo_client: MongoClient, archives: tuple[Path, Path]
) -> None:
    first, second = archives
    rng = random.Random(SEED)
    databases: list[str] = []

    def fresh_database() -> str:
        databases.append(f"elt_kill_{uuid.uuid4().hex[:10]}")
        return databases[-1]

    try:
        reference = fresh_database()
        load_to_end(project_dir, reference, first)
        after_first = collection_digests(mongo_client[reference], VOLATILE_FIELDS)
        n_first = mongo_client[reference].raw_airqino_hourly.count_documents({})
        load_to_end(project_dir, reference, second)
        after_second = collection_digests(mongo_client[reference], VOLATILE_FIELDS)
        n_second = mongo_client[reference].raw_airqino_hourly.count_documents({})
        n_history = mongo_client[reference].raw_airqino_history.count_documents({})
        assert n_first > 17_000 and n_second - n_first >= 140 and n_history > 700

        killed_mid_write = []
        for pair in range(PAIRS):
            database = fresh_database()
            db = mongo_client[database]
            raw, history = db.raw_airqino_hourly, db.raw_airqino_history

            share = rng.uniform(0.05, 0.95)
            point = f"pair {pair}, first load, after {share:.0%} of the rows"
            landed = kill_when(elt_load(project_dir, database, first), _count_reaches(raw, share * n_first))
            killed_mid_write.append(0 < landed < n_first)
            print(f"kill -9 at {point}: {landed} raw rows landed")
            assert db.load_batches.count_documents({"status": "running"}) >= 1  # the killed station batches
            load_to_end(project_dir, database, first)
            assert collection_digests(db, VOLATILE_FIELDS) == after_first, point

            if pair == PAIRS - 1:
                break
            if pair == 0:
                point, threshold = f"pair {pair}, second load, right after the first history entry", 1
            else:
                share = rng.uniform(0.05, 0.9)
                point, threshold = (
                    f"pair {pair}, second load, after {share:.0%} of the history",
                    share * n_history,
                )
            landed = kill_when(elt_load(project_dir, database, second), _count_reaches(history, threshold))
            killed_mid_write.append(0 < landed < n_history)
            print(f"kill -9 at {point}: {landed} history entries landed")
            load_to_end(project_dir, database, second)
            assert collection_digests(db, VOLATILE_FIELDS) == after_second, point
            mongo_client.drop_database(database)
        assert sum(killed_mid_write) >= 5, killed_mid_write
    finally:
        for name in databases:
            mongo_client.drop_database(name)
