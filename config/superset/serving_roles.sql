-- Roles of the serving PostgreSQL database. Run once as a superuser, connected to the serving database:
--   psql "postgresql://postgres@db-host/airqino" -f config/superset/serving_roles.sql
-- elt_publisher: `elt publish` (SERVING_DSN) creates and rewrites the tables of schema "airqino".
-- superset_ro:   Superset reads them (SUPERSET_SERVING_URI) and can change nothing.
-- Set the passwords afterwards in psql with \password elt_publisher and \password superset_ro, never in a file.
-- Safe to rerun.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'elt_publisher') THEN
    CREATE ROLE elt_publisher LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'superset_ro') THEN
    CREATE ROLE superset_ro LOGIN;
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO elt_publisher, superset_ro', current_database());
END
$$;
ALTER ROLE superset_ro SET default_transaction_read_only = on;

CREATE SCHEMA IF NOT EXISTS airqino AUTHORIZATION elt_publisher;
GRANT USAGE ON SCHEMA airqino TO superset_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA airqino TO superset_ro;
-- Tables that elt_publisher creates later (first publish, --rebuild, a changed model) are readable too.
ALTER DEFAULT PRIVILEGES FOR ROLE elt_publisher IN SCHEMA airqino GRANT SELECT ON TABLES TO superset_ro;
