#!/bin/sh
# One-off Superset setup for docker compose (rerunnable): metadata schema, admin user, roles, then the
# airqino dashboard from config/superset via `elt dashboard import` (it sets the read-only serving URI from
# SUPERSET_SERVING_URI, never written into the bundle).
set -eu

superset db upgrade
superset fab create-admin --username "${SUPERSET_ADMIN_USER:-admin}" --firstname Admin --lastname AirQino \
  --email "${SUPERSET_ADMIN_EMAIL:-admin@example.org}" --password "${SUPERSET_ADMIN_PASSWORD:?set SUPERSET_ADMIN_PASSWORD in .env}" \
  || echo "superset-init: admin user exists"
superset init

# The datasets point at tables the first `elt publish` creates: wait for them (the elt service runs at start).
python - <<'PY'
import os, sys, time
import psycopg2

uri = os.environ["SUPERSET_SERVING_URI"].replace("postgresql+psycopg2://", "postgresql://")
deadline = time.time() + float(os.environ.get("SUPERSET_INIT_WAIT_S", "1800"))
while True:
    try:
        with psycopg2.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("select to_regclass('airqino.daily_sensor_averages')")
            if cur.fetchone()[0] is not None:
                sys.exit(0)
    except psycopg2.Error as exc:
        print(f"superset-init: serving database not ready: {type(exc).__name__}", file=sys.stderr)
    if time.time() > deadline:
        print("superset-init: no published tables yet; importing the dashboard anyway", file=sys.stderr)
        sys.exit(0)
    time.sleep(10)
PY

/opt/elt-venv/bin/elt --project-dir /opt/airqino-elt dashboard import \
  --username "${SUPERSET_ADMIN_USER:-admin}" --superset-python /opt/superset-venv/bin/python
echo "superset-init: done; open http://localhost:${SUPERSET_PORT:-8088}/superset/dashboard/airqino/"
