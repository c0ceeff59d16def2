"""A private Superset 6.1 for the e2e test: its venv, an initialised metadata database, a running server.

The venv is never installed here: ``scripts/ci-setup-superset.sh`` makes it (``$SUPERSET_VENV``, default
``.superset-venv``); the e2e test fails with that command when it is missing. Initialising the
metadata database (``db upgrade``, ``fab create-admin``, ``init``) takes about 90 s, so the result is kept as
a template next to the venv, keyed by the Superset version and this repo's superset_config.py, and copied for
later runs; the template holds only the admin user and roles (no database connection, no secret).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SUPERSET_VENV", REPO_ROOT / ".superset-venv"))
CONFIG = REPO_ROOT / "config" / "superset" / "superset_config.py"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-pw"
SECRET_KEY = "e2e-only-secret-key-not-for-production-0123456789"


def superset_env(home: Path) -> dict[str, str]:
    """Environment for every Superset process of the test (its own SUPERSET_HOME and config)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPERSET_")}
    env.update(
        {
            "SUPERSET_HOME": str(home),
            "SUPERSET_CONFIG_PATH": str(CONFIG),
            "SUPERSET_SECRET_KEY": SECRET_KEY,
            "FLASK_APP": "superset",
            "SUPERSET_PYTHON": str(VENV / "bin" / "python"),
        }
    )
    return env


def _superset(env: dict[str, str], *args: str) -> None:
    completed = subprocess.run(
        [str(VENV / "bin" / "superset"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"superset {args[0]} failed: {completed.stdout[-1500:]} {completed.stderr[-1500:]}"
        )


def _template_path() -> Path:
    version = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('apache-superset'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    key = hashlib.sha256((version + ADMIN_PASSWORD).encode() + CONFIG.read_bytes()).hexdigest()[:12]
    return VENV / ".elt-cache" / f"metadata-{version}-{key}.db"


def init_metadata(home: Path) -> float:
    """An initialised metadata database in ``home`` (copied from the template when there is one); seconds spent."""
    started = time.monotonic()
    home.mkdir(parents=True, exist_ok=True)
    template = _template_path()
    if template.is_file():
        shutil.copy(template, home / "superset.db")
        return time.monotonic() - started
    env = superset_env(home)
    _superset(env, "db", "upgrade")
    _superset(env, "fab", "create-admin", "--username", ADMIN_USER, "--firstname", "E2E", "--lastname", "Admin",
              "--email", "admin@example.invalid", "--password", ADMIN_PASSWORD)  # fmt: skip
    _superset(env, "init")
    template.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(home / "superset.db", template.with_suffix(".tmp"))
    os.replace(template.with_suffix(".tmp"), template)
    return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SupersetServer:
    """A running ``superset run`` process."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def login(self) -> requests.Session:
        """A requests session with a bearer token of the admin user."""
        session = requests.Session()
        response = session.post(
            f"{self.url}/api/v1/security/login",
            json={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "provider": "db", "refresh": False},
            timeout=30,
        )
        response.raise_for_status()
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return session

    def stop(self) -> None:
        """Terminate the server process we started (and only it)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(home: Path, timeout_s: float = 120.0) -> SupersetServer:
    """Start ``superset run`` on a free port and wait for /health."""
    port = _free_port()
    log_path = home / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(VENV / "bin" / "superset"), "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
            env=superset_env(home), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = SupersetServer(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"superset run exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).text.strip() == "OK":
                return server
        except requests.RequestException:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(
        f"superset run did not answer /health in {timeout_s} s: {log_path.read_text()[-2000:]}"
    )
