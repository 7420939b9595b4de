"""``--workers N``: one port, N processes, one gateway (state in a real redis-server).

Each test holds connections it knows to be served by different workers (found through
``/proc``: which worker owns the server end of the connection), so "across workers" is a fact
of the test, not a likelihood. A key's limit of N admits N in total; one Idempotency-Key sent to
two workers at once makes one upstream call; a scrape of either worker shows both workers'
series; a killed worker is replaced and the port keeps
answering; SIGTERM drains every worker; SIGHUP reloads every worker in place; the memory
backend refuses more than one worker.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEV_KEY, OPENAI_SECRET, wait_until
from tests.fakes import openai_upstream
from tests.fakes.faults import FaultPlan
from tests.fakes.server import serve_aiohttp
from tests.redis_server import redis_server
from tests.server.test_process import free_port
from tests.server.test_replicas import CONFIG, KEY_RPM, UNLIMITED

CHAT = "/v1/chat/completions"


@dataclass
class Workers:
    supervisor: subprocess.Popen[bytes]
    port: int
    openai: FaultPlan
    log: Path  # the supervisor's and workers' output

    def pids(self) -> set[int]:
        """The supervisor's live children, from /proc."""
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == self.supervisor.pid and fields[0] != "Z":
                    children.add(int(entry))
        return children

    def owner(self, connection: http.client.HTTPConnection) -> int | None:
        """The worker serving this connection: the one holding its server-side socket."""
        client_port = connection.sock.getsockname()[1]
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
            if int(local, 16) == self.port and int(remote, 16) == client_port:
                inode = fields[9]
        for pid in self.pids():
            try:
                links = {
                    os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                }
            except OSError:
                continue
            if f"socket:[{inode}]" in links:
                return pid
        return None

    def one_connection_per_worker(self) -> dict[int, http.client.HTTPConnection]:
        """Open connections until every worker holds one (the kernel hashes each new one)."""
        held: dict[int, http.client.HTTPConnection] = {}
        for _ in range(200):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.connect()
            owner = None
            deadline = time.monotonic() + 2
            while owner is None and time.monotonic() < deadline:
                owner = self.owner(connection)  # accepted by the worker's loop soon after
            if owner is None or owner in held:
                connection.close()
            else:
                held[owner] = connection
            if len(held) == len(self.pids()):
                return held
        raise AssertionError("the kernel never spread connections over every worker")


def chat(connection: http.client.HTTPConnection, **headers: str) -> tuple[int, bytes]:
    body = json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
    connection.request(
        "POST",
        "/v1/chat/completions",
        body=body,
        headers={
            "authorization": f"Bearer {DEV_KEY}",
            "content-type": "application/json",
            **headers,
        },
    )
    response = connection.getresponse()
    return response.status, response.read()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    plan = FaultPlan()
    with redis_server() as redis_url, serve_aiohttp(openai_upstream.make_app(plan)) as openai_url:
        config = tmp_path / "gateway.toml"
        config.write_text(
            CONFIG.format(
                prefix=tmp_path.name,
                storage=tmp_path / "artifacts",
                openai=openai_url,
                replicate="http://127.0.0.1:9",
                rpm=KEY_RPM,
            )
        )
        env = {
            "TEST_REDIS_URL": redis_url,
            "TEST_OPENAI_KEY": OPENAI_SECRET,
            "TEST_REPLICATE_KEY": "unused",
            "TEST_DEV_KEY": DEV_KEY,
            "TEST_UNLIMITED_KEY": UNLIMITED,
        }
        port = free_port()
        command = [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(port)]
        log = tmp_path / "gateway.log"
        with log.open("wb") as output:
            supervisor = subprocess.Popen(
                [*command, "--workers", "2"],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=tmp_path,
            )
        running = Workers(supervisor, port, plan, log)
        try:
            wait_until(lambda: len(running.pids()) == 2 and healthy(port), timeout=20)
            yield running
        finally:
            if supervisor.poll() is None:
                supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(15)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait(5)


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v1/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def chat_requests_by_worker(connection: http.client.HTTPConnection) -> dict[str, float]:
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "beatra_http_requests_total" and sample.labels["route"] == CHAT:
                worker = sample.labels["worker"]
                counts[worker] = counts.get(worker, 0) + sample.value
    return counts


def test_a_key_limit_of_n_admits_n_across_workers(workers: Workers) -> None:
    first, second = workers.one_connection_per_worker().values()
    statuses = [chat((first, second)[n % 2])[0] for n in range(2 * KEY_RPM)]
    assert statuses.count(200) == KEY_RPM, statuses
    assert statuses.count(429) == KEY_RPM
    assert workers.openai.calls == KEY_RPM
    # Whichever worker a scrape reaches, it shows both workers' series.
    for connection in (first, second):
        assert chat_requests_by_worker(connection) == {"0": KEY_RPM, "1": KEY_RPM}


def test_one_idempotency_key_sent_to_two_workers_makes_one_upstream_call(
    workers: Workers,
) -> None:
    first, second = workers.one_connection_per_worker().values()
    workers.openai.push("slow", delay=0.3)  # the first call is still running when the second comes
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda c: chat(c, **{"idempotency-key": "same-key-both"}), (first, second))
        )
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1] == answers[1][1]
    assert workers.openai.calls == 1


def test_a_killed_worker_is_replaced_and_sigterm_drains_them_all(workers: Workers) -> None:
    before = workers.pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = workers.pids()  # one snapshot: the victim may still be exiting in a first look
        return len(now) == 2 and victim not in now

    wait_until(replaced, timeout=15)
    replacement = (workers.pids() - before).pop()
    held = workers.one_connection_per_worker()
    assert replacement in held
    assert chat(held[replacement])[0] == 200
    for connection in held.values():
        connection.close()
    workers.supervisor.send_signal(signal.SIGTERM)
    assert workers.supervisor.wait(15) == 0
    assert not workers.pids()
    events = [json.loads(line).get("event") for line in workers.log.read_text().splitlines()]
    assert "worker_died" in events and events[-1] == "workers_stopped"


def reloads_by_worker(connection: http.client.HTTPConnection) -> dict[str, float]:
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return {
        sample.labels["worker"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "beatra_config_reloads_total" and sample.labels["result"] == "applied"
    }


def test_sighup_to_the_supervisor_reloads_every_worker(workers: Workers, tmp_path: Path) -> None:
    added = "reload-added-worker-key"
    config = tmp_path / "gateway.toml"
    digest = hashlib.sha256(added.encode()).hexdigest()
    config.write_text(config.read_text() + f'\n[keys.added]\nsha256 = "{digest}"\n')
    held = workers.one_connection_per_worker()
    assert [chat(c, authorization=f"Bearer {added}")[0] for c in held.values()] == [401, 401]
    workers.supervisor.send_signal(signal.SIGHUP)
    first = next(iter(held.values()))
    wait_until(lambda: reloads_by_worker(first) == {"0": 1.0, "1": 1.0}, timeout=15)
    assert [chat(c, authorization=f"Bearer {added}")[0] for c in held.values()] == [200, 200]
    assert workers.pids() == set(held)  # reloaded in place, not restarted


def test_the_memory_backend_refuses_more_than_one_worker() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--workers", "2", "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert 'state.backend = "redis"' in done.stderr
