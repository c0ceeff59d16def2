"""Replaying the recorded AirQino responses in time order through ``elt load --from-dir``.

2022-12-10 -> 2023-12-10 (bare data arrays, the negative-CO era), then 2023-09-10 -> 2024-09-09 (full
responses, where the API had rewritten negative CO to 0.0). The three overlapping months must reconcile into
one row per (station, ts), and every server-side rewrite must be kept as a revision in the history.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from pymongo.database import Database

from tests.load_helpers import run_load_process as run_load

pytestmark = pytest.mark.shared_data

OLD_MAP = ["--map", "station1_data=283164601", "--map", "station2_data=283181971"]
# Counts measured on the recorded files (see ../shared/data/airqino/SOURCES.md).
EXPECTED = {
    # station: (old rows, new rows, overlapping hours, overlap rows that differ, of which CO clipped to 0.0)
    "283164601": (8154, 8535, 2173, 2157, 2157),
    "283181971": (8029, 7832, 2174, 1135, 1134),
}
OLD_NEWEST = datetime(2023, 12, 10, 0, tzinfo=timezone.utc)


def test_recorded_snapshots_reconcile_and_keep_the_negative_co_rewrite(
    project_dir: Path, shared_data_dir: Path, mongo_db: Database
) -> None:
    old = run_load(project_dir, "--from-dir", str(shared_data_dir / "v3_data_only_2023-12-10"), *OLD_MAP)
    assert old.exit_code == 0, old.stderr
    new = run_load(project_dir, "--from-dir", str(shared_data_dir / "v3_full_response_2024-09-09"))
    assert new.exit_code == 0, new.stderr

    raw, history = mongo_db.raw_airqino_hourly, mongo_db.raw_airqino_history
    for station_id, (n_old, n_new, overlap, differ, clipped) in EXPECTED.items():
        assert old.station(station_id)["inserted"] == n_old
        entry = new.station(station_id)
        assert (entry["received"], entry["rejected"]) == (n_new, 0)
        assert (entry["inserted"], entry["updated"], entry["unchanged"]) == (
            n_new - overlap,
            differ,
            overlap - differ,
        )
        assert raw.count_documents({"station_id": station_id}) == n_old + n_new - overlap

        revisions = list(history.find({"station_id": station_id}))
        assert len(revisions) == differ
        current_co = {
            d["_id"]: d.get("co") for d in raw.find({"_revision": 1, "station_id": station_id}, {"co": 1})
        }
        rewritten = [h for h in revisions if h.get("co", 0) < 0 and current_co[h["raw_id"]] == 0.0]
        assert len(rewritten) == clipped
        # The old snapshot's newest hour was still filling: its revision also finalized it.
        newest = history.find_one({"raw_id": f"{station_id}|2023-12-10T00:00Z"})
        assert (newest["provisional"], newest["change"]) == (True, "content+finalized")
        assert {h["change"] for h in revisions if h["ts"] != OLD_NEWEST} == {"content"}
        assert raw.count_documents({"station_id": station_id, "_revision": 1}) == differ

    per_hour = [
        {"$group": {"_id": {"s": "$station_id", "t": "$ts"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
    ]
    duplicates = list(raw.aggregate(per_hour))
    assert duplicates == []
    assert raw.count_documents({"provisional": True}) == 2

    # Replaying the older snapshot now changes nothing: it is stale, never a rollback of the rewrite.
    older = run_load(project_dir, "--from-dir", str(shared_data_dir / "v3_data_only_2023-12-10"), *OLD_MAP)
    assert all(s["inserted"] == s["updated"] == s["rejected"] == 0 for s in older.result["stations"])
    assert history.count_documents({}) == sum(expected[3] for expected in EXPECTED.values())
    assert raw.count_documents({"co": {"$lt": 0}, "_revision": 1}) == 0
