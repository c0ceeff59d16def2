"""A private, throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` on a free port.

``initdb`` refuses to run as root, so under root the server runs as the ``postgres`` (or ``nobody``) user
via ``runuser``; its data directory is a fresh temporary directory owned by that user. Host connections need
a password (scram-sha-256), so tests exercise real credentials; the unix socket lives in the data dir.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "pg-test-s3cret"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as_user() -> str | None:
    """The unprivileged user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


@dataclass
class PostgresServer:
    """A running private server; ``dsn(user, password, dbname)`` builds connection strings to it."""

    data_dir: Path
    port: int
    run_as: str | None
    pg_ctl: str

    host = "127.0.0.1"

    def dsn(
        self, user: str = SUPERUSER, password: str | None = SUPERUSER_PASSWORD, dbname: str = "postgres"
    ) -> str:
        """A ``postgresql://`` URL for this server."""
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@{self.host}:{self.port}/{dbname}"

    def sqlalchemy_uri(self, user: str, password: str, dbname: str) -> str:
        """The same as a SQLAlchemy URI for Superset (psycopg2 driver)."""
        return f"postgresql+psycopg2://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files."""
        _run(
            self.run_as,
            [self.pg_ctl, "-D", str(self.data_dir / "data"), "-m", "fast", "-w", "stop"],
            check=False,
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _run(run_as: str | None, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if run_as is not None:
        argv = ["runuser", "-u", run_as, "--", *argv]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}"
        )
    return completed


def start_postgres() -> PostgresServer:
    """initdb a fresh cluster in a temporary directory and start it on a free port."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    run_as = _run_as_user()
    if os.geteuid() == 0 and run_as is None:
        pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="elt-test-pg-"))
    pwfile = base / "pwfile"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if run_as is not None:
        info = pwd.getpwnam(run_as)
        for path in (base, pwfile):
            os.chown(path, info.pw_uid, info.pw_gid)
    _run(
        run_as,
        [initdb, "-D", str(base / "data"), "-U", SUPERUSER, f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
    )  # fmt: skip
    port = _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    _run(
        run_as,
        [pg_ctl, "-D", str(base / "data"), "-o", options, "-l", str(base / "server.log"), "-w", "start"],
    )
    return PostgresServer(data_dir=base, port=port, run_as=run_as, pg_ctl=pg_ctl)


def query(dsn: str, statement: str, params: tuple = ()) -> list[tuple]:
    """All rows of one statement."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(statement, params).fetchall()


def dataset_sql(name: str) -> str:
    """The ``sql`` of the dashboard's virtual dataset ``config/superset/datasets/<name>.yaml``."""
    import yaml

    path = Path(__file__).resolve().parents[2] / "config" / "superset" / "datasets" / f"{name}.yaml"
    return yaml.safe_load(path.read_text())["sql"]
