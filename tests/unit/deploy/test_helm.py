"""The Helm chart in ``deploy/helm/streamrec``: ``helm lint`` and ``helm template`` with a real Helm.

Helm is built from source by ``make helm`` (version pinned in the Makefile) into
``~/.cache/streamrec/helm/<version>``; without it these tests are skipped. The rendered manifests
are checked for what the deployment relies on: every environment variable is a real setting,
probes and scrape annotations hit the worker's real open endpoints on its real port, each worker
has its own volume, the registry is one shared ReadWriteMany claim, credentials only come from
Secrets, and wrong values stop the rendering with a readable message.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

from stream_app.settings import Settings  # noqa: E402
from tests.paths import ROOT  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "streamrec"
SCRAPE_K8S = ROOT / "deploy" / "prometheus" / "kubernetes.yml"
SETTINGS_VARS = {"STREAMREC_" + name.upper() for name in Settings.model_fields}
HELPER_VARS = {"POD_NAME"}  # set from the pod's metadata, used inside other values as $(POD_NAME)

SECURED = {
    "kafka.securityProtocol": "SASL_SSL",
    "secrets.saslUsername": "svc-streamrec",
    "secrets.saslPassword": "pw-not-in-pod-spec",
    "secrets.authToken": "token-not-in-pod-spec",
    "secrets.modelSigningKey": "key-not-in-pod-spec",
    "kafka.tls.enabled": "true",
    "kafka.tls.ca": "CA-PEM",
    "kafka.tls.cert": "CERT-PEM",
    "kafka.tls.key": "KEY-PEM",
    "trainer.gpus": "1",
    "worker.replicas": "4",
    "worker.extraEnv.STREAMREC_TOP_K": "20",
}


def helm_version() -> str:
    found = re.search(r"^HELM_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile pins HELM_VERSION"
    return found.group(1)


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Any:
    binary = Path.home() / ".cache" / "streamrec" / "helm" / helm_version() / "helm"
    if not os.access(binary, os.X_OK):
        pytest.skip(f"helm not built at {binary} (`make helm` builds it with Go)")
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str, values: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        sets = [f"--set={k}={v}" for k, v in (values or {}).items()]
        return subprocess.run([str(binary), *args, str(CHART), *sets], capture_output=True, text=True, env=env,
                              timeout=60)

    return run


_RENDERED: dict[tuple[tuple[str, str], ...], str] = {}


def render(helm: Any, values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders with ``values`` (each set of values rendered once)."""
    key = tuple(sorted((values or {}).items()))
    if key not in _RENDERED:
        done = helm("template", "rel", values=values)
        assert done.returncode == 0, done.stderr
        _RENDERED[key] = done.stdout
    return [d for d in yaml.safe_load_all(_RENDERED[key]) if d]


def one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind
             and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)]
    assert len(found) == 1, f"{len(found)} {kind} {component or ''}"
    return found[0]


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for d in docs if d["kind"] in ("StatefulSet", "Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def open_paths() -> set[str]:
    """Paths of the token-free endpoints the worker registers in ``stream_app/web/probes.py``."""
    tree = ast.parse((ROOT / "stream_app" / "web" / "probes.py").read_text())
    return {call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "page"
            and call.args and isinstance(call.args[0], ast.Constant)}


@pytest.mark.parametrize("values", [None, SECURED], ids=["defaults", "secured"])
def test_helm_lint_passes(helm, values):
    done = helm("lint", "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", [None, SECURED], ids=["defaults", "secured"])
def test_every_env_var_the_chart_sets_is_a_real_setting(helm, values):
    docs = render(helm, values)
    names = {name for c in containers(docs) for name in env_of(c)}
    assert names - HELPER_VARS <= SETTINGS_VARS, f"not settings: {sorted(names - HELPER_VARS - SETTINGS_VARS)}"
    assert {"STREAMREC_BROKER", "STREAMREC_DATA_DIR", "STREAMREC_REGISTRY_DIR", "STREAMREC_APP_ID"} <= names


def test_workers_are_a_statefulset_with_a_volume_each_and_probes_on_real_endpoints(helm):
    docs = render(helm, {"worker.replicas": "3"})
    sts = one(docs, "StatefulSet", "worker")
    assert sts["spec"]["replicas"] == 3
    pod = sts["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    env = env_of(worker)
    claims = {t["metadata"]["name"]: t["spec"] for t in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    data_claim = next(name for name, path in mounts.items() if path == env["STREAMREC_DATA_DIR"]["value"])
    assert data_claim in claims, "STREAMREC_DATA_DIR is on the per-worker claim template"
    assert "ReadWriteOnce" in claims[data_claim]["accessModes"]

    # a headless service gives each pod the stable name the worker advertises
    services = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in services] == [sts["spec"]["serviceName"]]
    assert env["STREAMREC_WEB_HOST"]["value"] == f"$(POD_NAME).{sts['spec']['serviceName']}"
    assert env["STREAMREC_INSTANCE_ID"]["value"] == "$(POD_NAME)"

    port = int(env["STREAMREC_WEB_PORT"]["value"])
    named = {p["name"]: p["containerPort"] for p in worker["ports"]}
    paths = open_paths()
    assert {"/health", "/ready", "/metrics"} <= paths
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = worker[kind]["httpGet"]
        assert probe["path"] in paths, f"{kind} asks {probe['path']}, not an open endpoint ({sorted(paths)})"
        assert named[probe["port"]] == port
    notes = sts["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == port
    assert notes["prometheus.io/path"] in paths
    for c in containers(docs):
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], c["name"]


def test_the_registry_is_one_shared_claim_mounted_by_trainer_and_workers(helm):
    docs = render(helm)
    pvc = one(docs, "PersistentVolumeClaim", "registry")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for kind, component in (("StatefulSet", "worker"), ("Deployment", "trainer")):
        spec = one(docs, kind, component)["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        claim_volumes = {v["name"] for v in spec["volumes"]
                         if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]}
        mounted = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in claim_volumes}
        assert mounted == {env_of(c)["STREAMREC_REGISTRY_DIR"]["value"]}, component
    trainer = one(docs, "Deployment", "trainer")
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate"
    args = trainer["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["train", "--every", "15m"]


def test_credentials_come_only_from_secrets(helm):
    docs = render(helm, SECURED)
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    pods = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
    for secret in ("pw-not-in-pod-spec", "token-not-in-pod-spec", "key-not-in-pod-spec", "KEY-PEM"):
        assert secret not in yaml.safe_dump(pods), f"{secret} appears in a pod spec"
    refs = [(c["name"], e) for c in containers(docs) for e in c["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
    assert {e["name"] for _, e in refs} >= {"STREAMREC_SASL_USERNAME", "STREAMREC_SASL_PASSWORD", "STREAMREC_AUTH_TOKEN",
                                           "STREAMREC_MODEL_SIGNING_KEY"}
    for _, e in refs:
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"], (e["name"], ref)
    # TLS files: each STREAMREC_SSL_* path is a key of the mounted TLS secret
    for c in containers(docs):
        env = env_of(c)
        mount = next(m for m in c["volumeMounts"] if m["name"] == "kafka-tls")
        pod = next(d for d in pods if c in d["spec"]["template"]["spec"]["containers"])["spec"]["template"]["spec"]
        tls = next(v for v in pod["volumes"] if v["name"] == "kafka-tls")["secret"]["secretName"]
        for var in ("STREAMREC_SSL_CAFILE", "STREAMREC_SSL_CERTFILE", "STREAMREC_SSL_KEYFILE"):
            path = Path(env[var]["value"])
            assert str(path.parent) == mount["mountPath"] and path.name in secrets[tls]["stringData"], var
    trainer = one(docs, "Deployment", "trainer")["spec"]["template"]["spec"]["containers"][0]
    assert trainer["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "STREAMREC_AUTH_TOKEN" not in env_of(trainer), "the trainer serves no pages"


@pytest.mark.parametrize(("values", "message"), [
    ({"worker.replicas": "9", "kafka.eventsPartitions": "8"}, "more than kafka.eventsPartitions"),
    ({"worker.extraEnv.TOP_K": "20"}, "TOP_K is not a streamrec setting"),
    ({"kafka.securityProtocol": "SASL_SSL"}, "set secrets.saslUsername"),
    ({"kafka.securityProtocol": "SSH"}, "kafka.securityProtocol must be"),
    ({"kafka.tls.enabled": "true"}, "set kafka.tls.existingSecret or kafka.tls.ca"),
])
def test_wrong_values_stop_the_rendering_with_one_clear_line(helm, values, message):
    done = helm("template", "rel", values=values)
    assert done.returncode != 0
    assert message in done.stderr.splitlines()[0], done.stderr


def test_the_kubernetes_scrape_job_finds_the_pods_the_chart_annotates(helm):
    """deploy/prometheus/kubernetes.yml keeps exactly the worker pods (by the chart's labels and
    annotations) and names the job and instances as the Grafana dashboard and docker/prometheus.yml do."""
    docs = render(helm)
    pod = one(docs, "StatefulSet", "worker")["spec"]["template"]
    labels, notes = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    port_names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    trainer_labels = one(docs, "Deployment", "trainer")["spec"]["template"]["metadata"]["labels"]

    (job,) = yaml.safe_load(SCRAPE_K8S.read_text())["scrape_configs"]
    docker_jobs = {j["job_name"] for j in yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())["scrape_configs"]}
    assert job["job_name"] in docker_jobs
    dashboard = (ROOT / "docker" / "grafana" / "dashboards" / "streamrec.json").read_text()
    assert f'job=\\"{job["job_name"]}\\"' in dashboard

    def meta(name: str, pod_labels: dict[str, str], pod_notes: dict[str, str]) -> str:
        for prefix, source in (("__meta_kubernetes_pod_label_", pod_labels),
                               ("__meta_kubernetes_pod_annotation_", pod_notes)):
            if name.startswith(prefix):
                wanted = name.removeprefix(prefix)
                return next((v for k, v in source.items() if re.sub(r"[^a-zA-Z0-9_]", "_", k) == wanted), "")
        if name == "__meta_kubernetes_pod_container_port_name":
            return sorted(port_names)[0]
        return ""

    def kept(pod_labels: dict[str, str], pod_notes: dict[str, str]) -> bool:
        for rule in job["relabel_configs"]:
            if rule.get("action") == "keep":
                value = ";".join(meta(s, pod_labels, pod_notes) for s in rule["source_labels"])
                if not re.fullmatch(rule["regex"], value):
                    return False
        return True

    assert kept(labels, notes), "the scrape job drops the chart's worker pods"
    assert not kept(trainer_labels, notes), "the scrape job would scrape the trainer (its labels)"
    assert not kept(labels, {**notes, "prometheus.io/scrape": "false"}), "the scrape annotation is obeyed"
    assert any(r.get("target_label") == "instance" for r in job["relabel_configs"])


@pytest.mark.parametrize("client_cert", [False, True])
def test_secrets_of_ones_own_are_referenced_and_not_created(helm, client_cert):
    docs = render(helm, {"secrets.existingSecret": "mine", "kafka.securityProtocol": "SASL_SSL",
                         "kafka.tls.enabled": "true", "kafka.tls.existingSecret": "my-tls",
                         "kafka.tls.clientCertificate": str(client_cert).lower()})
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart creates no Secret of its own"
    for c in containers(docs):
        env = env_of(c)
        assert env["STREAMREC_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mine"
        assert "STREAMREC_SSL_CAFILE" in env
        assert ("STREAMREC_SSL_CERTFILE" in env) is client_cert, "no client certificate unless there is one"
    pod = one(docs, "StatefulSet", "worker")["spec"]["template"]["spec"]
    assert {"name": "kafka-tls", "secret": {"secretName": "my-tls", "defaultMode": 0o440}} in pod["volumes"]
