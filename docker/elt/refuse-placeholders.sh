#!/bin/sh
# Refuse to start while any environment variable still holds the `change-me` placeholder of .env.example
# (also `changeme`, `change_me`, any case): print each such variable's name (never its value) and exit 2.
# Run by the compose `preflight` service before mongo/postgres/superset/elt start, and by elt-scheduler.
found=""
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
  eval "value=\${$name-}"
  if printf '%s' "$value" | grep -qiE 'change[-_]?me'; then
    found="$found $name"
  fi
done
if [ -n "$found" ]; then
  echo "refusing to start: these variables still hold the placeholder 'change-me' from .env.example:$found" >&2
  echo "replace every change-me value in .env with a real secret (e.g. python3 -c \"import secrets; print(secrets.token_urlsafe(32))\"), then: docker compose up -d" >&2
  exit 2
fi
exit 0
