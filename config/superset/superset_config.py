"""Superset configuration for the airqino-elt dashboard (local runs, docker compose and the e2e test).

Point Superset at it with ``SUPERSET_CONFIG_PATH=config/superset/superset_config.py``. Secrets come from the
environment only: ``SUPERSET_SECRET_KEY`` (required) and, for a PostgreSQL/MySQL metadata database,
``SUPERSET_METADATA_URI`` (default: SQLite under ``SUPERSET_HOME``).
"""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

if os.environ.get("SUPERSET_METADATA_URI"):
    SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URI"]

# Native filters and the generic x-axis are the defaults in 6.x; keep them explicit for readers.
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True, "GENERIC_CHART_AXES": True}

# The serving PostgreSQL is read through a read-only role (docs/superset.md); SQL Lab stays read-only too.
PREVENT_UNSAFE_DB_CONNECTIONS = True

# Chart data is small and refreshed hourly by `elt publish`: no result cache needed.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}

# Local and CI runs serve plain HTTP on localhost; put Superset behind TLS in production and enable this.
TALISMAN_ENABLED = os.environ.get("SUPERSET_TALISMAN_ENABLED", "false").lower() == "true"
