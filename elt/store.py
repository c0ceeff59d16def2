"""MongoDB connection: a real server from ``MONGO_URI``/the target, or the embedded SecantusDB default.

The embedded server is one background ``secantus`` daemon per data directory, shared by every ``elt`` process
of the project: the first command starts it (under a file lock, so two commands never start two servers on
one directory), later commands find it through a small state file and reuse it. ``elt server stop`` ends it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from filelock import FileLock, Timeout
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.config import Project
from elt.embedded_repair import INTERRUPTED_CREATE_MESSAGE, complete_interrupted_tables
from elt.errors import StoreBusyError, StoreError

log = logging.getLogger(__name__)

EMBEDDED_START_TIMEOUT_S = 60.0
#: The embedded server syncs its journal on every commit, so an acknowledged write survives a SIGKILL of the
#: server (without it one of 8 kill trials lost an acknowledged write). Cost: docs/models.md, crash safety.
EMBEDDED_DURABILITY_ARGS: tuple[str, ...] = ("--sync-on-commit",)
LOCK_TIMEOUT_S = 120.0
#: Every write of the project waits for a majority of the replica set (it survives a failover: no acknowledged
#: write is rolled back) and is retried once after a network error or an election (retryable writes). On a
#: standalone server (the embedded one included) majority is the one server and nothing is retried. An option
#: in the URI (``w=1``, ``retryWrites=false``: per target, through its MONGO_URI/mongo_uri) wins.
WRITE_OPTIONS: dict[str, Any] = {"w": "majority", "retryWrites": True}


def redact_uri(uri: str) -> str:
    """The URI with any user and password replaced by ``***`` (safe for logs and artifacts)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


@dataclass
class Store:
    """An open connection to the project's database."""

    client: MongoClient
    db: Database
    uri_redacted: str
    embedded: bool

    def server_info(self) -> dict[str, Any]:
        """Which server this is: name (mongod or SecantusDB), version, redacted URI, embedded or not."""
        build = self.client.admin.command("buildInfo")
        hello = self.client.admin.command("hello")
        name = "SecantusDB" if self.embedded or hello.get("setName") == "secantus" else "MongoDB"
        return {
            "name": name,
            "version": build.get("version", "?"),
            "uri": self.uri_redacted,
            "embedded": self.embedded,
            "database": self.db.name,
        }


def ensure_unique_index(collection: Collection, keys: Sequence[str], name: str | None = None) -> None:
    """Create (idempotently) the unique index ``$merge`` and upserts rely on."""
    collection.create_index([(key, ASCENDING) for key in keys], unique=True, name=name or "_".join(keys))


@contextlib.contextmanager
def open_store(project: Project, server_timeout_ms: int = 10_000) -> Iterator[Store]:
    """Connect to the target's MongoDB (starting the embedded server if none is configured) and ping it."""
    if project.target.mongo_uri is not None:
        uri, embedded = project.target.mongo_uri.get_secret_value(), False
    else:
        uri, embedded = ensure_embedded_server(project.embedded_dir), True
    client = connect(uri, server_timeout_ms)
    try:
        yield Store(
            client=client, db=client[project.database_name], uri_redacted=redact_uri(uri), embedded=embedded
        )
    finally:
        client.close()


def connect(uri: str, server_timeout_ms: int = 10_000) -> MongoClient:
    """A pinged MongoClient, or a StoreError naming the (redacted) server and what to check."""
    options: dict[str, Any] = {"appname": "airqino-elt", "tz_aware": True}
    in_uri = {key.lower() for key in parse_qs(urlsplit(uri).query)} if "?" in uri else set()
    options |= {k: v for k, v in WRITE_OPTIONS.items() if k.lower() not in in_uri}
    if "serverselectiontimeoutms" not in uri.lower():
        options["serverSelectionTimeoutMS"] = server_timeout_ms
    if "directConnection" not in uri and "replicaSet" not in uri and "+srv" not in uri:
        options["directConnection"] = True
    try:
        client: MongoClient = MongoClient(uri, **options)
        client.admin.command("ping")
    except PyMongoError as exc:
        raise StoreError(
            f"cannot reach MongoDB at {redact_uri(uri)}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Check MONGO_URI (or the target's mongo_uri) and that the server is running."
        ) from None
    return client


# --- embedded SecantusDB -------------------------------------------------------------------------------------


def _state_path(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".server.json")


@contextlib.contextmanager
def _exclusive_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """Hold the cross-process lock file ``path``; StoreBusyError after ``timeout_s`` of waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise StoreBusyError(
            f"the embedded store at {path.parent} is busy: another elt process has been starting it "
            f"for over {timeout_s:.0f} s. Retry, or run `elt server stop`."
        ) from None
    try:
        yield
    finally:
        lock.release()


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (possibly owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ping(uri: str, timeout_ms: int = 1500) -> bool:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, directConnection=True)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_embedded_state(data_dir: Path) -> dict[str, Any] | None:
    """The running embedded server's state (pid, port, uri), or None if none is running."""
    try:
        state = json.loads(_state_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(int(state.get("pid", 0))) or not _ping(state["uri"]):
        return None
    return state


def ensure_embedded_server(data_dir: Path) -> str:
    """URI of the embedded server on ``data_dir``, starting it in the background if it is not running."""
    with _exclusive_lock(data_dir.with_name(data_dir.name + ".lock"), LOCK_TIMEOUT_S):
        state = read_embedded_state(data_dir)
        if state:
            return str(state["uri"])
        return _start_embedded_server(data_dir)


def _start_embedded_server(data_dir: Path) -> str:
    try:
        import secantus  # noqa: F401
    except ImportError:
        raise StoreError(
            "no MongoDB configured and the embedded server is not installed. Either install it with "
            "`pip install 'airqino-elt[embedded]'` (SecantusDB, GPL-2.0) or set MONGO_URI to a MongoDB >= 7.0."
        ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    uri, failure = _spawn_embedded_server(data_dir)
    if failure and INTERRUPTED_CREATE_MESSAGE in failure:
        completed = complete_interrupted_tables(data_dir)
        if completed:
            log.warning(
                "the embedded store on %s had tables whose creation a kill interrupted (%s): completed them "
                "(they were empty); starting the server again", data_dir, ", ".join(completed),
            )  # fmt: skip
            uri, failure = _spawn_embedded_server(data_dir)
    if failure is not None:
        raise StoreError(
            f"the embedded MongoDB server on {data_dir} did not start; its log ends:\n{failure[-800:]}"
        )
    return uri


def _spawn_embedded_server(data_dir: Path) -> tuple[str, str | None]:
    """Start the daemon on ``data_dir`` and wait until it answers: its URI, and None or what it logged."""
    port = _free_port()
    uri = f"mongodb://127.0.0.1:{port}/"
    log_path = data_dir.with_name(data_dir.name + ".log")
    with open(log_path, "ab") as server_log:
        log_start = server_log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
             "--storage-path", str(data_dir), "--standalone", "--log-level", "WARNING", *EMBEDDED_DURABILITY_ARGS],
            stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log, start_new_session=True, close_fds=True,
        )  # fmt: skip
    deadline = time.monotonic() + EMBEDDED_START_TIMEOUT_S
    while not _ping(uri, 500):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with open(log_path, "rb") as server_log:
                server_log.seek(log_start)
                return uri, server_log.read().decode(errors="replace")
        time.sleep(0.2)
    state = {"pid": process.pid, "port": port, "uri": uri, "data_dir": str(data_dir),
             "started_at": datetime.now(timezone.utc).isoformat()}  # fmt: skip
    _state_path(data_dir).write_text(json.dumps(state))
    return uri, None


def stop_embedded_server(data_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stop the embedded server on ``data_dir``; True if one was running."""
    with _exclusive_lock(data_dir.with_name(data_dir.name + ".lock"), LOCK_TIMEOUT_S):
        state = read_embedded_state(data_dir)
        if not state:
            _state_path(data_dir).unlink(missing_ok=True)
            return False
        pid = int(state["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        _state_path(data_dir).unlink(missing_ok=True)
        return True
