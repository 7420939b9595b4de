"""Processes of the benchmark: start them pinned to a CPU, wait until they serve, read their CPU
time and memory from /proc, and stop them by their own pid (never by name)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    started: float  # time.perf_counter() just before the spawn

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads) from /proc/PID/stat."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        fields = raw.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) from /proc/PID/status, in kB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
        return found

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=grace)


# Names of processes to run under a tool (e.g. valgrind) -> the tool's command prefix, and how
# much longer such a process may take to start. Empty unless a benchmark counts instructions
# without hardware counters (bench/instructions.py).
WRAPPERS: dict[str, list[str]] = {}
WRAPPED_START_FACTOR = 20.0


def spawn(
    name: str,
    cmd: list[str],
    *,
    cpu: int,
    cwd: Path,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
) -> Proc:
    """Run ``cmd`` pinned to ``cpu``; ``taskset`` execs it (and a wrapper, if any, runs the
    program in its own process), so the pid is the command's own."""
    started = time.perf_counter()
    popen = subprocess.Popen(
        ["taskset", "-c", str(cpu), *WRAPPERS.get(name, []), *cmd],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
    return Proc(name, popen, started)


def cpu_times(cpu: int) -> dict[str, float]:
    """Seconds CPU ``cpu`` has spent in user+nice+system, irq+softirq and steal, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) / CLOCK_TICKS for x in line.split()[1:]]
            return {"busy": v[0] + v[1] + v[2], "irq": v[5] + v[6], "steal": v[7]}
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_status(host: str, port: int, method: str, path: str, timeout: float = 1.0) -> int | None:
    """The status of one request, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def wait_serving(
    proc: Proc, port: int, path: str, *, want: int | None, deadline_s: float, poll_s: float = 0.005
) -> float:
    """Poll until ``GET path`` answers (``want`` status, or any when None); seconds since spawn."""
    if proc.name in WRAPPERS:
        deadline_s *= WRAPPED_START_FACTOR
    limit = time.perf_counter() + deadline_s
    while time.perf_counter() < limit:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while starting")
        status = http_status("127.0.0.1", port, "GET", path, timeout=0.5)
        if status is not None and (want is None or status == want):
            return time.perf_counter() - proc.started
        time.sleep(poll_s)
    raise RuntimeError(f"{proc.name} did not serve {path} on port {port} within {deadline_s} s")
