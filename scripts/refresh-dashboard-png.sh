#!/usr/bin/env bash
# Refresh the committed docs/dashboard.png from real data: runs the e2e test (recorded AirQino data in
# ../shared/data/airqino → elt load → transform → forecast → publish → Superset → headless Chromium), which
# renders target/e2e/dashboard.png, then copies that picture to docs/dashboard.png. Tests never write tracked
# files themselves; this command is the only thing that does. Needs scripts/ci-setup-superset.sh first.
#
# Usage: scripts/refresh-dashboard-png.sh   (SUPERSET_VENV defaults to .superset-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
rm -f target/e2e/dashboard.png
"$python" -m pytest -m e2e tests/e2e/test_dashboard.py -q -p no:cacheprovider "$@"
[ -s target/e2e/dashboard.png ] || { echo "the e2e test rendered no target/e2e/dashboard.png" >&2; exit 1; }
cp target/e2e/dashboard.png docs/dashboard.png
echo "docs/dashboard.png refreshed from target/e2e/dashboard.png"
