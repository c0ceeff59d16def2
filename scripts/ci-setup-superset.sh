#!/usr/bin/env bash
# CI setup for the e2e tests (tests/e2e, marker e2e): PostgreSQL server binaries (initdb, pg_ctl), headless
# Chromium with its driver and a font, and the Superset 6.1 venv (.superset-venv). Idempotent; called by .ci/run.
# A failed install is reported and left to the tests, which then skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || packages+=(fonts-dejavu-core)

if ((${#packages[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${packages[*]} with apt-get"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "${packages[@]}" >/dev/null; }; then
    echo "WARNING: apt-get install ${packages[*]} failed; the e2e tests will skip what needs them" >&2
  fi
fi

started=$(date +%s)
if scripts/superset_env.sh; then
  echo "superset venv ready in $(($(date +%s) - started)) s"
else
  echo "WARNING: the Superset venv could not be installed; the e2e tests will skip" >&2
fi
exit 0
