"""``--workers N``: N gateway processes on one port, kept running by a small supervisor.

The supervisor binds one listening socket per worker, all on the same address with
``SO_REUSEPORT``, so the kernel spreads new connections evenly over the workers (a single shared
socket would wake every worker for each connection and feed the busiest), then forks the
workers. Each worker is the one-process gateway: its own event loop, app, connection pools and
store clients, serving its inherited socket. Workers share state only through the configured
Redis, which is why more than one worker needs ``state.backend = "redis"`` (``cli`` refuses the
memory backend: every worker would keep its own rate limits and idempotency keys).

A worker that dies is replaced on the same socket (connections waiting in its accept queue are
served by the replacement); one that dies again within ``_QUICK_EXIT_S`` of starting waits a
doubling delay first, so a worker that cannot start does not spin. SIGTERM or SIGINT drains:
each worker gets SIGTERM and finishes what it serves (``server.shutdown_grace_s``); whatever
is still alive ``_KILL_MARGIN_S`` after that is killed. SIGHUP is passed on to every worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import structlog

_log = structlog.get_logger("beatra.workers")
_QUICK_EXIT_S = 5.0
_MAX_BACKOFF_S = 30.0
_KILL_MARGIN_S = 5.0
_POLL_S = 0.05
_BACKLOG = 2048


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to one address with SO_REUSEPORT (port 0: one free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # the others join the port the first one got
            sock.listen(_BACKLOG)
            sock.set_inheritable(True)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Supervisor:
    """Forks a worker per socket, replaces the ones that die, drains them all on SIGTERM."""

    def __init__(
        self,
        sockets: list[socket.socket],
        serve: Callable[[int, socket.socket], None],
        shutdown_grace_s: float,
    ) -> None:
        self._sockets = sockets
        self._serve = serve
        self._grace_s = shutdown_grace_s
        self._workers: dict[int, int] = {}  # pid -> slot
        self._started: dict[int, float] = {}  # slot -> when its current worker started
        self._backoff: dict[int, float] = {}  # slot -> delay before its next restart
        self._stop_at: float | None = None  # set once SIGTERM arrived: the kill deadline

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        for slot in range(len(self._sockets)):
            self._start(slot)
        _log.info("workers_started", workers=len(self._sockets), pids=sorted(self._workers))
        restarts: dict[int, float] = {}  # slot -> when to start it again
        while self._workers or (restarts and self._stop_at is None):
            self._reap(restarts)
            now = time.monotonic()
            for slot, when in list(restarts.items()):
                if self._stop_at is None and now >= when:
                    del restarts[slot]
                    self._start(slot)
            if self._stop_at is not None and now >= self._stop_at:
                for pid in self._workers:
                    _log.warning("worker_killed", pid=pid, after_s=self._grace_s)
                    self._signal(pid, signal.SIGKILL)
                self._stop_at = now + _KILL_MARGIN_S  # reap them; SIGKILL cannot be ignored
            time.sleep(_POLL_S)
        for sock in self._sockets:
            sock.close()
        _log.info("workers_stopped")
        return 0

    def _start(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                # Until its gateway listens for SIGHUP (at startup), a reload passes it by.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                for index, sock in enumerate(self._sockets):
                    if index != slot:
                        sock.close()
                self._serve(slot, self._sockets[slot])
            except BaseException as exc:  # a worker reports whatever ended it, then exits
                print(f"beatra-gateway worker: {exc!r}", file=sys.stderr)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # never return into the supervisor's code
        self._workers[pid] = slot
        self._started[slot] = time.monotonic()

    def _reap(self, restarts: dict[int, float]) -> None:
        while self._workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._workers.clear()
                return
            if pid == 0:
                return
            slot = self._workers.pop(pid, None)
            if slot is None or self._stop_at is not None:
                continue
            lived = time.monotonic() - self._started[slot]
            delay = 0.0
            if lived < _QUICK_EXIT_S:
                delay = min(_MAX_BACKOFF_S, max(0.5, 2 * self._backoff.get(slot, 0.25)))
            self._backoff[slot] = delay
            _log.error(
                "worker_died",
                pid=pid,
                exit_status=os.waitstatus_to_exitcode(status),
                lived_s=round(lived, 3),
                restart_in_s=delay,
            )
            restarts[slot] = time.monotonic() + delay

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_at is None:
            _log.info("workers_draining", signal=signal.Signals(signum).name)
            self._stop_at = time.monotonic() + self._grace_s + _KILL_MARGIN_S
            for pid in self._workers:
                self._signal(pid, signal.SIGTERM)

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP: every worker reloads its own configuration file."""
        _log.info("workers_reloading", pids=sorted(self._workers))
        for pid in list(self._workers):
            self._signal(pid, signal.SIGHUP)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # it exited; the next reap collects it
            os.kill(pid, sig)
