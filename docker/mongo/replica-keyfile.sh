#!/usr/bin/env bash
# Replica-set profile, once per start: write the members' shared key (keyFile authentication between members)
# from MONGO_REPLICA_KEY (.env) into the mongo-keys volume, readable by mongod (uid 999) only.
set -euo pipefail
key="${MONGO_REPLICA_KEY:-}"
if [[ -z "$key" || "$key" == "change-me" ]]; then
  echo "MONGO_REPLICA_KEY is empty or change-me: set it in .env (e.g. openssl rand -base64 756 | tr -d '\n')" >&2
  exit 2
fi
if (( ${#key} < 6 || ${#key} > 1024 )); then
  echo "MONGO_REPLICA_KEY must be 6 to 1024 base64 characters (got ${#key})" >&2
  exit 2
fi
umask 077
printf '%s' "$key" >/keys/keyfile
chown 999:999 /keys/keyfile
chmod 400 /keys/keyfile
echo "replica-set keyfile written" >&2
