"""Measuring one step: wall and CPU seconds and peak RSS of a child process and of the database server.

Every measured step runs in its own process (as cron would run it). Its CPU seconds come from ``os.wait4``.
Its peak RSS is the ``VmHWM`` of ``/proc/<pid>/status`` polled every 20 ms while it runs: the ``ru_maxrss`` of
a child also counts the parent's memory it was forked from (Linux records the pre-exec high-water mark), which
would make every step look as big as the bench driver. The database server is a separate process too;
when the bench started it, its CPU seconds come from ``/proc/<pid>/stat`` and its peak RSS from ``VmHWM``
(reset before each step through ``/proc/<pid>/clear_refs``). No psutil needed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

REPO_ROOT = Path(__file__).resolve().parents[1]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One measured step."""

    label: str
    wall_s: float
    #: CPU seconds (user + system) of the step's process.
    cpu_s: float
    #: Peak resident memory of the step's process, MiB (VmHWM polled every 20 ms).
    peak_rss_mb: float
    #: CPU seconds the database server spent during the step (None on an external server).
    server_cpu_s: float | None = None
    #: Peak resident memory of the database server during the step, MiB (None on an external server).
    server_peak_rss_mb: float | None = None
    returncode: int = 0
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    @property
    def total_cpu_s(self) -> float:
        """Client plus server CPU seconds."""
        return self.cpu_s + (self.server_cpu_s or 0.0)

    def as_json(self) -> dict[str, Any]:
        """The sample without its captured output, rounded for the report."""
        data = {k: v for k, v in asdict(self).items() if k not in ("stdout", "stderr")}
        data["total_cpu_s"] = self.total_cpu_s
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


class StepFailed(RuntimeError):
    """A measured step exited non-zero."""


class ServerProcess:
    """CPU and memory readings of the database server process (Linux ``/proc``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """Peak resident memory since the last ``reset_peak``, MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_mb(self) -> float:
        """Current resident memory, MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def reset_peak(self) -> None:
        """Reset the peak RSS (VmHWM) to the current RSS."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")


class _PeakPoller(threading.Thread):
    """Follows a process's ``VmHWM`` (peak resident set of its current program) until it exits."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.interval_s = interval_s
        self.peak_kb = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                for line in self.status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                        break
            except (OSError, ValueError):
                return
            self.stopped.wait(self.interval_s)


class _ServerTracer(threading.Thread):
    """Samples the server's CPU seconds with wall-clock times into ``trace``."""

    def __init__(
        self, server: ServerProcess, trace: list[tuple[float, float]], interval_s: float = 0.05
    ) -> None:
        super().__init__(daemon=True)
        self.server, self.trace, self.interval_s = server, trace, interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.trace.append((time.time(), self.server.cpu_s()))
            if self.stopped.wait(self.interval_s):
                with contextlib.suppress(OSError, ValueError):
                    self.trace.append((time.time(), self.server.cpu_s()))
                return


def server_cpu_between(trace: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Server CPU seconds between two unix times, from a ``server_trace`` (linear between samples)."""
    if len(trace) < 2:
        return None

    def at(moment: float) -> float:
        if moment <= trace[0][0]:
            return trace[0][1]
        for (t0, c0), (t1, c1) in zip(trace, trace[1:], strict=False):
            if t0 <= moment <= t1:
                return c0 + (c1 - c0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return trace[-1][1]

    return max(0.0, at(end) - at(start))


def run_measured(
    label: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    server: ServerProcess | None = None,
    timeout_s: float = 3600,
    check: bool = True,
    server_trace: list[tuple[float, float]] | None = None,
) -> Sample:
    """Run ``command`` to completion and measure it (and the server while it ran).

    ``server_trace`` (a list) receives ``(unix time, server CPU seconds)`` every 50 ms while the command runs, so
    a caller can split the server's CPU by the command's own phases (e.g. the steps of one ``elt run``).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if server:
            server.reset_peak()
            server_cpu_before = server.cpu_s()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=out, stderr=err, env=dict(env) if env else None, cwd=cwd
        )
        timer = threading.Timer(timeout_s, _kill, args=(process.pid,))
        timer.start()
        poller = _PeakPoller(process.pid)
        poller.start()
        tracer = _ServerTracer(server, server_trace) if server and server_trace is not None else None
        if tracer:
            tracer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            poller.stopped.set()
            poller.join()
            if tracer:
                tracer.stopped.set()
                tracer.join()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        sample = Sample(
            label=label,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=poller.peak_kb / 1024,
            server_cpu_s=server.cpu_s() - server_cpu_before if server else None,
            server_peak_rss_mb=server.peak_rss_mb() if server else None,
            returncode=process.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
    if check and sample.returncode != 0:
        raise StepFailed(
            f"{label}: `{' '.join(command)}` exited {sample.returncode}; stderr ends:\n{sample.stderr[-2000:]}"
        )
    return sample


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Median, min and max of wall/CPU seconds and the peak RSS over repeated samples."""
    if not samples:
        return {"n": 0}
    walls = [s.wall_s for s in samples]
    cpus = [s.total_cpu_s for s in samples]
    result: dict[str, Any] = {
        "n": len(samples),
        "wall_s_median": round(median(walls), 3),
        "wall_s_min": round(min(walls), 3),
        "wall_s_max": round(max(walls), 3),
        "cpu_s_median": round(median(s.cpu_s for s in samples), 3),
        "total_cpu_s_median": round(median(cpus), 3),
        "peak_rss_mb_max": round(max(s.peak_rss_mb for s in samples), 1),
    }
    if samples[0].server_cpu_s is not None:
        result["server_cpu_s_median"] = round(median(s.server_cpu_s or 0.0 for s in samples), 3)
        result["server_peak_rss_mb_max"] = round(max(s.server_peak_rss_mb or 0.0 for s in samples), 1)
    return result


def combine(label: str, samples: Sequence[Sample]) -> Sample:
    """Steps run one after another as one sample: times add up, peaks are the maximum."""
    servers = [s.server_cpu_s for s in samples]
    return Sample(
        label=label,
        wall_s=sum(s.wall_s for s in samples),
        cpu_s=sum(s.cpu_s for s in samples),
        peak_rss_mb=max(s.peak_rss_mb for s in samples),
        server_cpu_s=None if None in servers else sum(s or 0.0 for s in servers),
        server_peak_rss_mb=(None if None in servers else max(s.server_peak_rss_mb or 0.0 for s in samples)),
    )


# --- the database server ---------------------------------------------------------------------------------


@dataclass
class BenchServer:
    """The MongoDB the bench writes to: ``MONGO_URI`` when set, else a SecantusDB daemon started for the run."""

    uri: str
    process: ServerProcess | None
    info: dict[str, Any]

    def client(self) -> MongoClient:
        """A new client (direct connection, tz-aware)."""
        return MongoClient(self.uri, directConnection=True, tz_aware=True, serverSelectionTimeoutMS=20_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_info(uri: str) -> dict[str, Any]:
    """Name and version of the server behind ``uri`` (credentials never included)."""
    from elt.store import redact_uri

    client: MongoClient = MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=20_000)
    try:
        build = client.admin.command("buildInfo")
        hello = client.admin.command("hello")
    finally:
        client.close()
    if "secantusVersion" in build or hello.get("setName") == "secantus":
        return {"name": "SecantusDB", "version": build.get("secantusVersion", "?"),
                "wire_version": build.get("version"), "uri": redact_uri(uri)}  # fmt: skip
    return {"name": "MongoDB", "version": build.get("version", "?"), "uri": redact_uri(uri)}


@contextlib.contextmanager
def bench_server(work_dir: Path) -> Iterator[BenchServer]:
    """``MONGO_URI`` if set (CPU/RSS of the server then unknown), else a fresh SecantusDB daemon in ``work_dir``."""
    if os.environ.get("MONGO_URI"):
        uri = os.environ["MONGO_URI"]
        yield BenchServer(uri, None, server_info(uri))
        return
    storage = work_dir / "mongo"
    storage.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    uri = f"mongodb://127.0.0.1:{port}/"
    log = open(work_dir / "mongo.log", "ab")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", str(storage), "--standalone", "--log-level", "WARNING"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_server(uri, process)
        yield BenchServer(uri, ServerProcess(process.pid), server_info(uri))
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_server(uri: str, process: subprocess.Popen | None = None, timeout_s: float = 60) -> None:
    """Block until ``uri`` answers ping (RuntimeError if ``process`` dies or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        client: MongoClient = MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return
        except PyMongoError:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"the MongoDB server at {uri} did not start") from None
            time.sleep(0.2)
        finally:
            client.close()


# --- the machine -----------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and current load average (other work skews timings) of this machine."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "memory_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    """The repository's HEAD commit, if git is available."""
    if not shutil.which("git"):
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
