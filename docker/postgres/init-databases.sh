#!/bin/bash
# First start of the PostgreSQL container only (docker-entrypoint-initdb.d): the Superset metadata database
# and the serving database `airqino` with its two roles (config/superset/serving_roles.sql): elt_publisher
# (`elt publish`) and superset_ro (Superset, read-only). Passwords come from the environment (.env).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v superset_pw="$SUPERSET_DB_PASSWORD" <<'SQL'
CREATE ROLE superset LOGIN PASSWORD :'superset_pw';
CREATE DATABASE superset OWNER superset;
CREATE DATABASE airqino;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname airqino -f /opt/airqino/serving_roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname airqino \
  -v publisher_pw="$SERVING_DB_PASSWORD" -v reader_pw="$SUPERSET_RO_PASSWORD" <<'SQL'
ALTER ROLE elt_publisher PASSWORD :'publisher_pw';
ALTER ROLE superset_ro PASSWORD :'reader_pw';
SQL
