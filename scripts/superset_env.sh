#!/usr/bin/env bash
# Create (or reuse) the Superset virtualenv used by `elt dashboard import` and the e2e tests.
#
# Superset lives in its own venv, never in the project's dependencies. The pins come from
# docs/superset.md: without them `superset db upgrade` fails (rich, flask-caching) and adding a
# PostgreSQL database fails (cachetools). Idempotent: a venv whose stamp matches the pins is reused.
#
# Usage: scripts/superset_env.sh [VENV_DIR]   (default: .superset-venv beside this script's repo)
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-${SUPERSET_VENV:-$repo_dir/.superset-venv}}"
python_bin="${SUPERSET_BASE_PYTHON:-python3.11}"  # the interpreter the venv is made from
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

pins=(
  "apache-superset==6.1.0"
  "flask-caching==2.3.1"
  "rich"
  "cachetools"
  "psycopg2-binary"
)
stamp="$venv_dir/.elt-superset-pins"
wanted="${pins[*]}"

if [[ -x "$venv_dir/bin/superset" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  echo "superset venv ready: $venv_dir" >&2
  exit 0
fi

echo "creating superset venv in $venv_dir (one-off, ~1 min on a warm pip cache)" >&2
"$python_bin" -m venv "$venv_dir"
"$venv_dir/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
# Importing superset needs a config; checking the installed distribution and its CLI entry point is enough.
"$venv_dir/bin/python" -c "import importlib.metadata as m; assert m.version('apache-superset') == '6.1.0'" || {
  echo "apache-superset 6.1.0 is not importable from $venv_dir" >&2
  exit 1
}
printf '%s' "$wanted" >"$stamp"
echo "superset venv ready: $venv_dir" >&2
