"""The operator artefacts in deploy/ against the real gateway: every metric the Grafana dashboard
and the Prometheus alert rules name exists in a real ``/metrics`` output (and the dashboard and
the README's table show every metric there is), ``promtool`` accepts the scrape config and the
rules, and the alerts fire on the series they are written for and stay quiet on a healthy one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.server import UvicornServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
README = ROOT / "README.md"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
METRIC_NAME = re.compile(r"\bbeatra_[a-z_]+")
# The sample names Prometheus stores for each metric type prometheus-client exposes.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_families(server: UvicornServer) -> dict[str, str]:
    """Every metric family of a real ``/metrics`` (labelled ones with no samples yet too)."""
    text = httpx.get(server.url + "/metrics").text
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def series_names(families: dict[str, str]) -> set[str]:
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES[kind]}


def queries(node: Any) -> Iterator[str]:
    """The PromQL of a dashboard: panel targets and templating variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def dashboard_metrics(path: Path) -> set[str]:
    return {m for q in queries(json.loads(path.read_text())) for m in METRIC_NAME.findall(q)}


def alert_metrics() -> set[str]:
    lines = ALERTS.read_text().splitlines()
    return {
        m for line in lines if not line.lstrip().startswith("#") for m in METRIC_NAME.findall(line)
    }


def test_every_metric_named_in_deploy_exists(gateway: UvicornServer) -> None:
    families = exported_families(gateway)
    exported = series_names(families)
    readme = README.read_text().partition("## Metrics, logs and dashboards")[2]
    for name, kind in families.items():
        documented = name + "_total" if kind == "counter" else name
        assert f"| `{documented}` | {kind} |" in readme, f"README's metrics table lacks {name}"
    assert DASHBOARDS, "no dashboard in deploy/grafana"
    for path in DASHBOARDS:
        used = dashboard_metrics(path)
        assert used - exported == set(), f"{path.name} queries metrics the gateway lacks"
        shown = {name for name, kind in families.items() if series_names({name: kind}) & used}
        assert shown == set(families), f"{path.name} has no panel for {set(families) - shown}"
    used = alert_metrics()
    assert used and used - exported == set(), "alerts.yml queries metrics the gateway lacks"


def test_dashboard_queries_the_templated_prometheus_datasource() -> None:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["schemaVersion"] >= 36 and dashboard["uid"]
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["DS_PROMETHEUS"]["type"] == "datasource"
        assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
        expected = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for panel in panels:
            assert panel["datasource"] == expected, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == expected and target["expr"], panel["title"]


def promtool() -> str:
    """The promtool binary; without it the check fails in CI and is skipped elsewhere."""
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (bash scripts/setup installs Debian's prometheus)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run_promtool(*args: str, cwd: Path = DEPLOY / "prometheus") -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    run_promtool("check", "config", "prometheus.yml")  # also checks the rule_files it loads
    run_promtool("check", "rules", str(ALERTS), cwd=DEPLOY.parent)


SERIES = 'beatra_{metric}{{job="beatra-gateway", instance="gw:8080", {labels}}}'
CHAT = 'route="/v1/chat/completions", method="POST"'
# (series, values every minute) for a healthy gateway and for one where everything goes wrong.
HEALTHY = [
    ("http_requests_total", f'{CHAT}, status="200"', "0+600x40"),
    ("http_requests_total", f'{CHAT}, status="502"', "0+3x40"),
    ("upstream_requests_total", 'provider="p", model="m", outcome="ok"', "0+600x40"),
    ("upstream_requests_total", 'provider="p", model="m", outcome="canceled"', "0+600x40"),
    ("upstream_requests_total", 'provider="p", model="m", outcome="timeout"', "0+30x40"),
    ("rate_limited_total", 'scope="key"', "0+6x40"),
    ("gateway_overhead_seconds_bucket", 'route="r", le="0.001"', "0+600x40"),
    ("gateway_overhead_seconds_bucket", 'route="r", le="+Inf"', "0+600x40"),
]
FAILING = [
    ("http_requests_total", f'{CHAT}, status="200"', "0+600x40"),
    ("http_requests_total", f'{CHAT}, status="502"', "0+60x40"),
    ("upstream_requests_total", 'provider="p", model="m", outcome="ok"', "0+60x40"),
    ("upstream_requests_total", 'provider="p", model="m", outcome="server_error"', "0+60x40"),
    ("rate_limited_total", 'scope="model"', "0+120x40"),
    ("gateway_overhead_seconds_bucket", 'route="r", le="0.005"', "0+100x40"),
    ("gateway_overhead_seconds_bucket", 'route="r", le="0.01"', "0+600x40"),
    ("gateway_overhead_seconds_bucket", 'route="r", le="+Inf"', "0+600x40"),
    # Rests, then a failed half-open trial: the series goes stale for a scrape in between.
    ("deployment_cooling", 'deployment="m#0"', "1x25 stale 1x14"),
]
IDLE = [("http_requests_total", f'{CHAT}, status="200"', "5x60")]


def rule_test(
    series: list[tuple[str, str, str]], up: str, firing: list[str], at: str = "30m"
) -> dict[str, Any]:
    """A promtool test case: these series and ``up``; exactly ``firing`` fire at ``at``."""
    inputs = [
        {"series": SERIES.format(metric=metric, labels=labels), "values": values}
        for metric, labels, values in series
    ]
    inputs.append({"series": 'up{job="beatra-gateway", instance="gw:8080"}', "values": up})
    expected = [{"labels": f'{{alertname="{name}"}}', "value": 1} for name in sorted(firing)]
    check = {"expr": 'count by (alertname) (ALERTS{alertstate="firing"})', "eval_time": at}
    return {
        "interval": "1m",
        "input_series": inputs,
        "promql_expr_test": [{**check, "exp_samples": expected}],
    }


def test_alerts_fire_when_meant_to_and_only_then(tmp_path: Path) -> None:
    failing = [
        "BeatraDeploymentCooling",
        "BeatraGatewayDown",
        "BeatraGatewayHighErrorRate",
        "BeatraGatewayOverheadHigh",
        "BeatraRateLimitingSpike",
        "BeatraUpstreamFailing",
    ]
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            rule_test(HEALTHY, "1x40", []),
            rule_test(FAILING, "1x20 0x20", failing),
            rule_test([], "_x40", ["BeatraGatewayAbsent"]),
            rule_test(IDLE, "1x60", ["BeatraGatewayNoTraffic"], at="59m"),
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    run_promtool("test", "rules", str(path), cwd=tmp_path)
