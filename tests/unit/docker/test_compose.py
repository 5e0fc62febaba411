"""The Docker deployment files, checked without a Docker engine.

Compose, Prometheus and Grafana files must parse, reference only real settings and real
metrics, and keep workers scalable (no fixed host port). ``docker compose config`` runs
too when the compose client is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

from prometheus_client.metrics_core import Metric  # noqa: E402

from stream_app.core.metrics import WorkerMetrics  # noqa: E402
from stream_app.settings import Settings  # noqa: E402
from tests.paths import ROOT  # noqa: E402

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
STREAMREC_VAR = re.compile(r"\bSTREAMREC_[A-Z0-9_]+\b")
METRIC_TOKEN = re.compile(r"\bstreamrec_[a-z0-9_]+\b")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _exposed_metric_names() -> set[str]:
    """Every series name the worker's registry can expose, by metric type."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "gauge": ("",), "summary": ("_sum", "_count", "_created"), "info": ("_info",)}
    names: set[str] = set()
    for family in WorkerMetrics().registry.collect():
        assert isinstance(family, Metric)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_compose_has_the_services_and_volumes():
    doc = _compose()
    services = doc["services"]
    for name in ("kafka", "topics", "worker", "trainer", "producer", "prometheus", "grafana"):
        assert name in services, f"compose.yaml lacks service {name!r}"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["producer"].get("profiles") == ["demo"]
    assert services["trainer"]["command"][:3] == ["train", "--every", "15m"]
    assert services["producer"]["command"][:2] == ["produce", "--synthetic"]
    assert {"registry", "kafka-data"} <= set(doc["volumes"])


def test_topic_init_creates_the_contract_topics():
    script = " ".join(_compose()["services"]["topics"]["command"])
    for topic in ("events", "recommendations", "events-dlq"):
        assert re.search(rf"--topic {re.escape(topic)} --partitions", script), topic
    default = re.search(r"STREAMREC_EVENTS_PARTITIONS:-(\d+)", COMPOSE.read_text())
    assert default and int(default.group(1)) >= 4


def test_worker_scales_without_fixed_host_ports():
    services = _compose()["services"]
    worker = services["worker"]
    assert "ports" not in worker, "a fixed host port would make --scale worker=N fail"
    assert "container_name" not in worker
    env = worker["environment"]
    assert env["STREAMREC_WEB_HOST"] == "0.0.0.0"
    assert int(env["STREAMREC_WEB_PORT"]) == 6066
    assert env["STREAMREC_BROKER"] == "kafka://kafka:9092"
    # Per-replica state stays out of shared volumes; only the registry is shared with the trainer.
    data_dir = env["STREAMREC_DATA_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker.get("volumes", [])}
    assert data_dir not in mounts, "a named volume on the data dir would be shared by every replica"
    reg = env["STREAMREC_REGISTRY_DIR"]
    assert mounts.get(reg) == "registry"
    trainer = services["trainer"]
    assert trainer["environment"]["STREAMREC_REGISTRY_DIR"] == reg
    assert f"registry:{reg}" in trainer["volumes"]


def test_host_ports_are_loopback_only():
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_every_streamrec_variable_is_a_setting():
    fields = {"STREAMREC_" + f.upper() for f in Settings.model_fields}
    used = set(STREAMREC_VAR.findall(COMPOSE.read_text()))
    used |= set(STREAMREC_VAR.findall((DOCKER / "Dockerfile").read_text()))
    assert used, "expected STREAMREC_ settings in compose.yaml"
    unknown = used - fields
    assert not unknown, f"not fields of Settings: {sorted(unknown)}"
    # and the values given in compose are accepted by Settings (interpolations resolved to defaults)
    env = dict(_compose()["services"]["worker"]["environment"])
    resolved = {k[len("STREAMREC_"):].lower(): re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", str(v))
                for k, v in env.items()}
    resolved = {k: v for k, v in resolved.items() if v != ""}
    s = Settings(**resolved)
    assert s.bootstrap == "kafka:9092" and s.web_host == "0.0.0.0"


def test_prometheus_scrapes_workers_on_6066():
    doc = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    job = jobs["streamrec-worker"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == 6066
    prom = _compose()["services"]["prometheus"]
    assert any(v.startswith("./prometheus.yml:") for v in prom["volumes"])


def test_grafana_provisioning_points_at_the_dashboard():
    ds = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/streamrec.yaml").read_text())
    path = prov["providers"][0]["options"]["path"]
    grafana = _compose()["services"]["grafana"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
    dash = json.loads((DOCKER / "grafana/dashboards/streamrec.json").read_text())
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_dashboard_queries_use_real_metrics():
    dash = json.loads((DOCKER / "grafana/dashboards/streamrec.json").read_text())
    exposed = _exposed_metric_names()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    used = {m for e in exprs for m in METRIC_TOKEN.findall(e)}
    unknown = used - exposed
    assert not unknown, f"dashboard uses metrics the worker does not expose: {sorted(unknown)}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    text = "\n".join(exprs)
    for needed in ("streamrec_events_total", "streamrec_recommendations_total", "streamrec_dlq_total",
                   "streamrec_latency_seconds_bucket", "streamrec_consumer_lag", "streamrec_batch_size",
                   "streamrec_model_swaps_total", "streamrec_live_hr10", "streamrec_live_ndcg10",
                   "streamrec_live_ctr", "streamrec_live_conversion", "streamrec_online_events_learned"):
        assert needed in text, f"no panel shows {needed}"
    for q in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(streamrec_latency_seconds_bucket" in text


def test_metric_name_check_would_catch_a_typo():
    exposed = _exposed_metric_names()
    assert "streamrec_latency_seconds_bucket" in exposed and "streamrec_events_total" in exposed
    assert "streamrec_events" not in exposed and "streamrec_latency_seconds" not in exposed


def test_dockerfile_runs_the_console_script_as_non_root():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["streamrec"\]', text, re.M)
    assert re.search(r'^CMD \["worker"\]', text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "/health" in text and "HEALTHCHECK" in text
    assert re.search(r"^ENV .*STREAMREC_DATA_DIR=/data", text, re.M | re.S)
    assert "pip install" in text and "COPY pyproject.toml" in text


def test_compose_config_validates():
    if shutil.which("docker") is None:
        pytest.skip("no docker client installed: `docker compose config` not run")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("docker client has no compose plugin: `docker compose config` not run")
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
