"""Readers of the deployment files in deploy/ (Dockerfile, compose, nginx, Kubernetes, the
gateway config) for the checks in this package: each returns a file, or one object of it, as
plain data; the config is loaded by the gateway's own loader with a fake environment.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import create_app
from gateway.config.settings import Settings, StateSettings, settings_from_dict

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_FILE = DEPLOY / "gateway.toml"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def named_variables(node: Any) -> set[str]:
    """Every environment variable a config names (``api_key_env``, ``key_env``, ...)."""
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k.endswith("_env") and isinstance(v, str)}
        return found.union(*(named_variables(v) for v in node.values()))
    return set()


def k8s(kind: str) -> dict[str, Any]:
    (found,) = [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == kind
    ]
    return dict(found)


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = k8s("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def container_port(port: int | str) -> int:
    """A port as a number; a named port resolves through the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container()["ports"] if p["name"] == port]
    return int(number)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def gateway_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's volumes as {target: source} (short syntax ``source:target[:mode]``)."""
    pairs = (entry.split(":")[:2] for entry in service.get("volumes", []))
    return {target: source for source, target in pairs}


def dockerfile() -> dict[str, list[str]]:
    """The Dockerfile's instructions, continuation lines joined: {INSTRUCTION: [arguments]}."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(rest.strip())
    return found


def dockerfile_env() -> dict[str, str]:
    pairs = (item.split("=", 1) for line in dockerfile()["ENV"] for item in shlex.split(line))
    return {name: value for name, value in pairs}


def nginx_blocks(text: str) -> list[Any]:
    """nginx.conf as nested lists: a directive is [words...], a block is [words..., [body]]."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};"]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list[Any]] = [[]]
    words: list[Any] = []
    for token in tokens:
        if token == ";":
            stack[-1].append(words)
            words = []
        elif token == "{":
            stack.append([])
            stack[-2].append([*words, stack[-1]])
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    return stack[0]


def walk(blocks: list[Any]) -> Iterator[list[Any]]:
    for entry in blocks:
        yield entry
        if entry and isinstance(entry[-1], list):
            yield from walk(entry[-1])


def nginx() -> list[Any]:
    return nginx_blocks((DEPLOY / "nginx.conf").read_text())


def seconds(duration: str | int) -> float:
    """A compose duration (``35s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration))
    assert parts, duration
    return sum(float(value) * units[unit] for value, unit in parts)


def tool(name: str) -> str:
    """An installed tool; without it the check is skipped (the others still run)."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


# Values the fake environment gives to the variables the config names.
FAKE_VALUES = {"REDIS_URL": "redis://redis:6379/0"}
CONFIG_DATA = tomllib.loads(CONFIG_FILE.read_text())
VARIABLES = named_variables(CONFIG_DATA)
FAKE_ENV = {name: FAKE_VALUES.get(name, f"test-value-of-{name}") for name in VARIABLES}


def settings() -> Settings:
    return settings_from_dict(CONFIG_DATA, FAKE_ENV)


def prometheus_config() -> dict[str, Any]:
    service = compose()["services"]["prometheus"]
    (config,) = service["configs"]
    assert f"--config.file={config['target']}" in service["command"]
    content = compose()["configs"][config["source"]]["content"]
    data: dict[str, Any] = yaml.safe_load(content)
    return data


def health_path(tmp_path: Path) -> str:
    """The health route's path, from the application's own route table."""
    offline = dataclasses.replace(
        settings(),
        state=StateSettings(),
        storage=dataclasses.replace(settings().storage, path=str(tmp_path)),
    )
    app = create_app(offline)
    (route,) = [r for r in app.routes if r.handler == app.operations.health]
    assert route.method == "GET" and not route.auth
    return route.path
