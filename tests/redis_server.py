"""A real, throwaway ``redis-server`` for tests: free loopback port, temp dir, no persistence.

``redis_server()`` starts one, waits until it answers PING and yields its URL; on exit it stops
the server and removes its directory. ``running_redis()`` yields the ``RedisServer`` itself, for
a test that stops Redis mid-scenario. ``scripts/setup`` installs ``redis-server``; without it
``RedisServerMissingError`` says so (tests fail on it rather than skip: the Redis backend must be
tested wherever the suite runs).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3  # another process may take the free port between our probe and the bind


class RedisServerMissingError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "redis-server is not installed; run scripts/setup (it installs Debian's redis-server)"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _start(
    binary: str, directory: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    log = directory / "redis.log"
    wanted = port
    for _ in range(PORT_ATTEMPTS):
        port = wanted or _free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(directory), "--logfile", str(log)]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return process, port
            time.sleep(0.01)
        _stop(process)
    detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"redis-server did not start after {PORT_ATTEMPTS} attempts:\n{detail}")


class RedisServer:
    """One running redis-server; ``stop`` ends it (a test can take Redis away mid-scenario)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissingError()
        self._binary, self._directory = binary, directory
        self._process, self.port = _start(binary, directory)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop(self._process)

    def restart(self) -> None:
        """Start again on the same port, empty (nothing is persisted): a Redis that restarted."""
        _stop(self._process)
        self._process, _ = _start(self._binary, self._directory, self.port)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A fresh redis-server in its own temp dir, stopped and removed on exit."""
    with tempfile.TemporaryDirectory(prefix="redis-test-") as directory:
        server = RedisServer(Path(directory))
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Run a fresh redis-server; yields ``redis://127.0.0.1:PORT/0``."""
    with running_redis() as server:
        yield server.url
