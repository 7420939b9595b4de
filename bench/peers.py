"""The optional subjects beside the gateway and the floor: the gateway on Redis, and LiteLLM.

``gateway-redis`` is the benchmark's gateway with ``state.backend = "redis"`` (rate limits,
cooldowns and idempotency in a local ``redis-server`` on the load's core, no persistence), as a
second process on its own port. ``litellm`` is the most-used Python gateway, ``litellm[proxy]``
at the version in ``bench/peer-requirements.txt``, installed from PyPI into its own virtualenv
under ``.tools/`` (never into the project's), run as one worker with no database, its logging
off, in front of the same canned nginx upstream, with the benchmark's key as its master key.
Both are pinned to the subject's CPU like the gateway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.loads import BENCH_DIR, LOAD_CPU, ROOT
from bench.procs import Proc, spawn, wait_serving
from bench.stack import NGINX_PORT, SUBJECT_CPU, Stack

REDIS_PORT = 18185
REDIS_GATEWAY_PORT = 18186
LITELLM_PORT = 18187
LITELLM_VENV = ROOT / ".tools" / "peer-litellm"
REDIS_STATE = """
[state]
backend = "redis"
redis_url_env = "BENCH_REDIS_URL"
"""
LITELLM_CONFIG = """
model_list:
  - model_name: bench-json
    litellm_params:
      model: openai/bench-upstream-1
      api_base: http://127.0.0.1:{nginx}/v1
      api_key: bench-upstream-key
  - model_name: bench-sse
    litellm_params:
      model: openai/bench-upstream-1
      api_base: http://127.0.0.1:{nginx}/stream/v1
      api_key: bench-upstream-key
litellm_settings:
  set_verbose: false
  turn_off_message_logging: true
general_settings:
  master_key: sk-bench-key
"""


def start_redis_gateway(stack: Stack, tmp: Path) -> Proc | None:
    """A redis-server and a second gateway whose state lives in it (None, with a note, when
    redis-server is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        stack.say("gateway-redis: skipped, redis-server is not installed (scripts/setup --test)")
        return None
    redis_dir = tmp / "redis"
    redis_dir.mkdir(exist_ok=True)
    loopback = ["--bind", "127.0.0.1", "--port", str(REDIS_PORT)]
    no_disk = ["--save", "", "--appendonly", "no", "--dir", str(redis_dir)]
    server = spawn(
        "redis",
        [binary, *loopback, *no_disk],
        cpu=LOAD_CPU,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.procs.append(server)
    config = tmp / "gateway-redis.toml"
    config.write_text(stack.gateway_config().read_text(encoding="utf-8") + REDIS_STATE)
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
    gateway_port = str(REDIS_GATEWAY_PORT)
    gateway = spawn(
        "gateway-redis",
        [sys.executable, "-m", "gateway", "--config", str(config), "--port", gateway_port],
        cpu=SUBJECT_CPU,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.procs.append(gateway)
    wait_serving(gateway, REDIS_GATEWAY_PORT, "/v1/health", want=200, deadline_s=30)
    return gateway


def install_litellm(stack: Stack) -> Path:
    """The peer's virtualenv (made once), with the pinned litellm[proxy]; its ``litellm``."""
    program = LITELLM_VENV / "bin" / "litellm"
    requirements = BENCH_DIR / "peer-requirements.txt"
    stamp = LITELLM_VENV / "installed-from.txt"
    wanted = requirements.read_text(encoding="utf-8")
    if program.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return program
    stack.say(f"installing the peer into {LITELLM_VENV.relative_to(ROOT)} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(wanted, encoding="utf-8")
    return program


def start_litellm(stack: Stack, tmp: Path) -> Proc:
    program = install_litellm(stack)
    config = tmp / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(nginx=NGINX_PORT), encoding="utf-8")
    quiet = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    os.environ.update(quiet)
    address = ["--host", "127.0.0.1", "--port", str(LITELLM_PORT)]
    proc = spawn(
        "litellm",
        [str(program), "--config", str(config), *address, "--num_workers", "1"],
        cpu=SUBJECT_CPU,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=(stack.logs / "litellm.log").open("wb"),
    )
    stack.procs.append(proc)
    wait_serving(proc, LITELLM_PORT, "/health/liveliness", want=200, deadline_s=120)
    return proc
