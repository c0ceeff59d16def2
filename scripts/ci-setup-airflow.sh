#!/usr/bin/env bash
# Create (or reuse) the Airflow 3 virtualenv used by tests/run/test_airflow_dag.py (marker `airflow`).
#
# Airflow lives in its own venv, never in the project's dependencies: the DAG calls the `elt` CLI of the
# project's venv (ELT_BIN), so Airflow's pins never meet the project's. Idempotent and cached: the venv is built
# once per set of pins under ~/.cache/airqino-elt (AIRFLOW_VENV_CACHE) and linked as .airflow-venv, so a fresh
# clone (CI) reuses it in about a second; building it takes about 90 s on 2 cores with a warm pip cache.
#
# Usage: scripts/ci-setup-airflow.sh [VENV_DIR]   (default: .airflow-venv in the repo)
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-${AIRFLOW_VENV:-$repo_dir/.airflow-venv}}"
python_bin="${AIRFLOW_PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

# The standard provider ships BashOperator in Airflow 3; no constraints file (it lives off PyPI), so pin the core.
pins=(
  "apache-airflow==3.3.2"
  "apache-airflow-providers-standard"
)
wanted="${pins[*]} $("$python_bin" -c 'import sys; print(sys.version.split()[0])')"
stamp_name=".elt-airflow-pins"

ready() { [[ -x "$1/bin/airflow" && -f "$1/$stamp_name" && "$(cat "$1/$stamp_name")" == "$wanted" ]]; }

if ready "$venv_dir"; then
  echo "airflow venv ready: $venv_dir" >&2
  exit 0
fi

cache_root="${AIRFLOW_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airqino-elt}"
cache_dir="$cache_root/airflow-venv-$(printf '%s' "$wanted" | sha256sum | cut -c1-12)"
if ! ready "$cache_dir"; then
  started=$(date +%s)
  echo "creating airflow venv in $cache_dir (one-off, about 90 s on 2 cores)" >&2
  rm -rf "$cache_dir"
  mkdir -p "$cache_root"
  "$python_bin" -m venv "$cache_dir"
  "$cache_dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" >&2 || true
  "$cache_dir/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" 2>&1 | grep -v "is ignored" >&2 || true
  "$cache_dir/bin/python" -c "import airflow.sdk, airflow.timetables.interval, airflow.providers.standard" || {
    echo "Airflow from $cache_dir does not import" >&2
    exit 1
  }
  printf '%s' "$wanted" >"$cache_dir/$stamp_name"
  echo "airflow venv built in $(( $(date +%s) - started )) s" >&2
fi

# Link the cached venv into place (an outdated real venv is replaced).
if [[ -e "$venv_dir" || -L "$venv_dir" ]]; then
  rm -rf "$venv_dir"
fi
ln -s "$cache_dir" "$venv_dir"
echo "airflow venv ready: $venv_dir -> $cache_dir" >&2
