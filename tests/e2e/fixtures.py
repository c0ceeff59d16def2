"""Pytest fixtures of the publish and e2e tests, loaded with ``pytest_plugins = ["tests.e2e.fixtures"]``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pymongo.database import Database

from tests.e2e.marts import FixtureMarts, build_marts, write_marts
from tests.e2e.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL for the test session."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def serving_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh serving database on the private server (superuser DSN), dropped after the test."""
    import psycopg

    name = f"serving_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.dsn(dbname=name)
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def marts(mongo_db: Database) -> FixtureMarts:
    """The fixture marts written into the test's MongoDB database."""
    fixture = build_marts()
    write_marts(mongo_db, fixture)
    return fixture
