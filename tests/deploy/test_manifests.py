"""The multi-replica deployment in deploy/ agrees with itself and with the code, with no cluster
and no docker: every YAML parses, deploy/gateway.toml loads with the gateway's own loader, and
ports, probes, environment variables, mounts and grace periods line up across the Dockerfile,
compose (two replicas behind nginx, Redis, Prometheus, Grafana) and the Kubernetes manifests.
Where promtool, nginx or docker compose are installed, they validate their files too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.cli import check_bind
from gateway.config.settings import ConfigError, settings_from_dict
from tests.deploy import (
    CONFIG_DATA,
    CONFIG_FILE,
    DEPLOY,
    FAKE_ENV,
    FAKE_VALUES,
    VARIABLES,
    YAML_FILES,
    compose,
    container,
    container_port,
    dockerfile,
    dockerfile_env,
    gateway_services,
    health_path,
    k8s,
    mounts,
    nginx,
    pod_spec,
    prometheus_config,
    seconds,
    settings,
    tool,
    walk,
)


def test_every_yaml_file_parses_and_manifests_are_namespace_free() -> None:
    assert len(YAML_FILES) >= 10, YAML_FILES
    for path in YAML_FILES:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path
        if path.parent.name == "k8s":
            for doc in documents:
                assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
                assert "namespace" not in doc["metadata"], path


def test_the_deploy_config_loads_with_the_gateways_own_loader() -> None:
    loaded = settings()
    assert {"REDIS_URL", "BEATRA_API_KEY"} <= VARIABLES
    assert loaded.state.backend == "redis" and loaded.state.redis_url == FAKE_VALUES["REDIS_URL"]
    assert loaded.storage.path.startswith("/")  # not relative to whatever the working dir is
    check_bind(loaded, "0.0.0.0")  # no development key: it may be served on every address
    for name in VARIABLES:  # each variable is really needed: without it the config is refused
        with pytest.raises(ConfigError, match=name):
            settings_from_dict(CONFIG_DATA, {k: v for k, v in FAKE_ENV.items() if k != name})
    configmap = k8s("ConfigMap")
    assert configmap["data"]["gateway.toml"] == CONFIG_FILE.read_text()


def test_one_port_everywhere() -> None:
    port = settings().server.port
    env = dockerfile_env()
    assert dockerfile()["EXPOSE"] == [str(port)] and env["BEATRA_PORT"] == str(port)
    assert env["BEATRA_HOST"] == "0.0.0.0"
    (healthcheck,) = dockerfile()["HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/" in healthcheck
    assert [p["containerPort"] for p in container()["ports"]] == [port]
    (service_port,) = k8s("Service")["spec"]["ports"]
    assert container_port(service_port["targetPort"]) == port
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    for service in gateway_services().values():
        assert service["expose"] == [str(port)]
    (upstream,) = [e for e in walk(nginx()) if e[0] == "upstream"]
    servers = [e[1] for e in upstream[-1] if e[0] == "server"]
    assert sorted(servers) == sorted(f"{name}:{port}" for name in gateway_services())


def test_probes_and_healthcheck_use_the_health_route(tmp_path: Path) -> None:
    path = health_path(tmp_path)
    port = settings().server.port
    spec = container()
    assert {"readinessProbe", "livenessProbe"} <= spec.keys()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in spec:
            assert spec[probe]["httpGet"]["path"] == path, probe
            assert container_port(spec[probe]["httpGet"]["port"]) == port, probe
    (healthcheck,) = dockerfile()["HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}{path}'" in healthcheck


def test_every_variable_the_config_names_is_provided() -> None:
    spec = container()
    provided = {e["name"] for e in spec.get("env", [])}
    secret = k8s("Secret")
    for source in spec.get("envFrom", []):
        assert source["secretRef"]["name"] == secret["metadata"]["name"]
        provided |= set(secret["stringData"])
    assert provided >= VARIABLES
    assert "data" not in secret  # placeholders in plain sight, never encoded real values
    assert all("change-me" in value for value in secret["stringData"].values())
    assert secret["stringData"].keys() >= VARIABLES
    for name, service in gateway_services().items():
        assert service["environment"].keys() >= VARIABLES, name


def test_the_config_is_mounted_where_beatra_config_points() -> None:
    spec = container()
    (config_path,) = [e["value"] for e in spec["env"] if e["name"] == "BEATRA_CONFIG"]
    assert config_path == dockerfile_env()["BEATRA_CONFIG"]
    (volume,) = [v for v in pod_spec()["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == k8s("ConfigMap")["metadata"]["name"]
    (mount,) = [m for m in spec["volumeMounts"] if m["name"] == volume["name"]]
    (item,) = volume["configMap"]["items"]
    assert item["key"] == "gateway.toml"
    assert f"{mount['mountPath']}/{item['path']}" == config_path
    for name, service in gateway_services().items():
        assert service["environment"]["BEATRA_CONFIG"] == config_path, name
        assert (DEPLOY / mounts(service)[config_path]).resolve() == CONFIG_FILE, name


def test_the_artifact_volume_is_shared_at_the_storage_path() -> None:
    path = settings().storage.path
    run_commands = " ".join(dockerfile()["RUN"])
    assert f"mkdir -p {path}" in run_commands  # the image owns it for its non-root user
    sources = {mounts(service)[path] for service in gateway_services().values()}
    assert len(sources) == 1  # one volume for every replica
    (volume,) = sources
    assert volume in compose()["volumes"]  # a named volume, not a directory of one host path
    (claim,) = [v for v in pod_spec()["volumes"] if "persistentVolumeClaim" in v]
    pvc = k8s("PersistentVolumeClaim")
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == claim["name"]]
    assert mount["mountPath"] == path and not mount.get("readOnly")


def test_grace_periods_outlast_the_drain() -> None:
    grace = settings().server.shutdown_grace_s
    spec = container()
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop > 0
    assert pod_spec()["terminationGracePeriodSeconds"] > grace + pre_stop
    for name, service in gateway_services().items():
        assert seconds(service["stop_grace_period"]) > grace, name


def test_selectors_match_the_deployments_pods() -> None:
    deployment = k8s("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s("Service")["spec"]["selector"].items() <= labels.items()
    hpa = k8s("HorizontalPodAutoscaler")["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == deployment["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert k8s("PodDisruptionBudget")["spec"]["minAvailable"] < hpa["minReplicas"]


def test_pods_run_unprivileged_with_resources() -> None:
    spec = container()
    pod_security = pod_spec()["securityContext"]
    assert pod_security["runAsNonRoot"] and pod_security["runAsUser"] != 0
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= spec["resources"][kind].keys()  # the HPA needs cpu requests
    (user,) = dockerfile()["USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert user.split(":")[0] == str(pod_security["runAsUser"])


def test_compose_runs_two_replicas_behind_a_round_robin_balancer() -> None:
    services = compose()["services"]
    assert len(gateway_services()) == 2
    assert {"redis", "lb", "prometheus", "grafana"} <= services.keys()
    for service in gateway_services().values():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert str(service["environment"]["REDIS_URL"]).startswith("redis://redis:")
    assert mounts(services["lb"])["/etc/nginx/nginx.conf"] == "./nginx.conf"
    assert services["lb"]["depends_on"].keys() == gateway_services().keys()
    (upstream,) = [e for e in walk(nginx()) if e[0] == "upstream"]
    # Round robin is nginx's default; any balancing directive would replace it.
    assert not {"least_conn", "ip_hash", "hash", "random"} & {e[0] for e in upstream[-1]}
    locations = {tuple(e[1:-1]): e[-1] for e in walk(nginx()) if e[0] == "location"}
    chat = locations[("=", "/v1/chat/completions")]
    assert ["proxy_buffering", "off"] in chat
    assert ["proxy_pass", f"http://{upstream[1]}"] in chat


def test_prometheus_scrapes_every_replica_under_the_alerts_job_name() -> None:
    port = settings().server.port
    reference = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus_config()["scrape_configs"]
    assert job["job_name"] == reference["scrape_configs"][0]["job_name"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == sorted(f"{name}:{port}" for name in gateway_services())
    service = compose()["services"]["prometheus"]
    for rule_file in prometheus_config()["rule_files"]:
        assert mounts(service)[rule_file] == "./prometheus/alerts.yml"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    grafana = mounts(compose()["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose()["services"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "beatra.yaml").read_text())[
        "providers"
    ]
    directory = provider["options"]["path"]
    dashboards = {t: s for t, s in grafana.items() if t.startswith(directory + "/")}
    assert dashboards, f"nothing is mounted in {directory}"
    for target, source_file in dashboards.items():
        assert target.endswith(".json") and (DEPLOY / source_file).is_file()
        json.loads((DEPLOY / source_file).read_text())
    assert "./grafana/beatra-gateway.json" in dashboards.values()


def test_promtool_accepts_the_compose_scrape_config(tmp_path: Path) -> None:
    promtool = tool("promtool")
    config = prometheus_config()
    service = compose()["services"]["prometheus"]
    # Rule files as the container sees them are the compose mounts' sources here.
    config["rule_files"] = [str(DEPLOY / mounts(service)[f]) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    binary = tool("nginx")
    text = (DEPLOY / "nginx.conf").read_text()
    # The replicas' names resolve only inside compose's network; loopback stands in for them.
    for name in gateway_services():
        text = text.replace(f"server {name}:", "server 127.0.0.1:")
    (tmp_path / "nginx.conf").write_text(text)
    stderr_and_pid = ["-e", "stderr", "-g", f"pid {tmp_path / 'nginx.pid'};"]
    result = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), *stderr_and_pid],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_accepts_the_file() -> None:
    docker = tool("docker")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("docker is installed without its compose plugin")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        env={**os.environ, "BEATRA_API_KEY": "test-key"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
