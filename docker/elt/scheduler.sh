#!/bin/sh
# Run `elt run` once at start, then at minute ELT_RUN_MINUTE (default 5) of every hour, forever.
# A failed run is logged and the next hour retries (the default window reloads from the last success);
# a run still going when the next is due makes that one exit 3 (busy) and it is simply tried an hour later.
set -u
# Placeholders from .env.example are refused before anything runs (exit 2, the variable named).
refuse="$(command -v elt-refuse-placeholders || echo "$(dirname "$0")/refuse-placeholders.sh")"
"$refuse" || exit 2
minute="${ELT_RUN_MINUTE:-5}"
trigger="${ELT_RUN_TRIGGER:-compose}"

trap 'echo "elt-scheduler: stopping"; exit 0' TERM INT

run_once() {
  elt --log-format "${ELT_LOG_FORMAT:-json}" run --trigger "$trigger" --no-summary
  echo "elt-scheduler: elt run exited $? at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

if [ "${ELT_RUN_ON_START:-true}" = "true" ]; then
  run_once
fi
while true; do
  now=$(date -u +%s)
  next=$(( now / 3600 * 3600 + minute * 60 ))
  [ "$next" -le "$now" ] && next=$(( next + 3600 ))
  echo "elt-scheduler: next run at $(date -u -d "@$next" +%H:%M:%SZ)"
  sleep $(( next - now )) &
  wait $!
  run_once
done
