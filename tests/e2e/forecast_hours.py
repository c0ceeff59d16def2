"""Issue the +1 h / +2 h forecasts hour by hour over a past window, as hourly ``elt forecast predict`` runs would.

Usage: python -m tests.e2e.forecast_hours PROJECT_DIR HOURS  (MONGO_URI / ELT_DATABASE in the environment)

Recorded data is a snapshot: the forecasts an hourly job would have written during its last HOURS hours do not
exist in it. This replays them with the project's own ``predict_project`` (the code ``elt forecast predict
--at`` runs), in one process so the model and scikit-learn load once instead of once per hour.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from elt.config import load_project
from elt.forecast.run import newest_final_hour, predict_project, project_stations
from elt.store import open_store


def main(project_dir: str, hours: int) -> int:
    """Predict from each of the ``hours`` issue hours ending with the newest final hour; print counts as JSON."""
    project = load_project(project_dir)
    written = 0
    with open_store(project) as store:
        station_ids, _ = project_stations(project)
        newest = newest_final_hour(store.db, station_ids)
        if newest is None:
            raise SystemExit("no final hour in stg_airqino_hourly: run elt load and elt transform first")
        newest = newest.to_pydatetime()
        for back in range(hours, -1, -1):
            result = predict_project(project, store.db, at=newest - timedelta(hours=back))
            written += len(result.forecasts)
    print(
        json.dumps({"issue_hours": hours + 1, "forecasts": written, "newest_final_hour": newest.isoformat()})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
