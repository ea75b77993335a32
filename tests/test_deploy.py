"""The Kubernetes manifests and the Grafana dashboard of deploy/ (#23): one passaparola per brand, locked down.

Every resource file is validated offline against the Kubernetes schemas (kubernetes-validate, strict, the oldest
and the newest version it knows from 1.30 up), and the base StatefulSet and each overlay are checked for what a
reviewer looks at, so these run everywhere. Where ``kubectl`` is installed each overlay is also rendered with its
kustomize and the result is validated and checked the same way. The dashboard may query only the metrics and
labels that ``/metrics`` really exports, through the datasource the provisioning file defines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from listener import Author, Mention, Poll
from notifiers.alert import Alert
from passaparola import config as configuration
from passaparola.web.metrics import render
from rules import NegativeSpike, VolumeSpike
from storage import Store
from tests.conftest import ROOT, T0

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "passaparola-brands.json"
SCRAPE = K8S / "prometheus" / "passaparola-scrape.yml"
SECRETS_DIR = "/run/secrets/passaparola"
#: The oldest Kubernetes the manifests support and the newest whose schemas kubernetes-validate ships.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KUBECTL = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: the overlays are checked file by file, not rendered"
)
#: Labels a series gets from the scrape (deploy/k8s/prometheus/passaparola-scrape.yml), not from passaparola.
SCRAPE_LABELS = {"brand", "namespace", "pod", "job", "instance"}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization(folder: Path) -> dict[str, Any]:
    [doc] = load_all(folder / "kustomization.yaml")
    return doc


def resource_files() -> list[Path]:
    """Every file a kustomization under deploy/ lists as a resource (folders are other kustomizations)."""
    found = set()
    for file in sorted((ROOT / "deploy").rglob("kustomization.yaml")):
        for entry in kustomization(file.parent).get("resources", []):
            path = (file.parent / entry).resolve()
            if path.is_file():
                found.add(path)
    return sorted(found)


def validate(doc: dict[str, Any]) -> None:
    """Strict schema validation (unknown fields refused) against each of `VERSIONS`; the Prometheus Operator's
    ServiceMonitor is a CRD the schemas do not know, so its shape is checked by hand."""
    if doc["apiVersion"] == "monitoring.coreos.com/v1":
        assert doc["kind"] == "ServiceMonitor"
        [endpoint] = doc["spec"]["endpoints"]
        assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
        assert endpoint["authorization"]["type"] == "Bearer"
        assert endpoint["authorization"]["credentials"]["key"] == "metrics_token"
        assert {"sourceLabels": ["__meta_kubernetes_service_label_passaparola_brand"], "targetLabel": "brand"} in (
            endpoint["relabelings"]
        )
        return
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']} {doc['metadata'].get('name')}: not valid for Kubernetes {version}: {error}")


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def assert_locked_down(statefulset: dict[str, Any]) -> None:
    """What the restricted Pod Security Standard and a reviewer ask of the one passaparola pod."""
    spec = statefulset["spec"]
    assert spec["replicas"] == 1  # SQLite: one writer
    pod = spec["template"]["spec"]
    assert pod["enableServiceLinks"] is False  # PASSAPAROLA_*_SERVICE_HOST would be refused as config overrides
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert resources["requests"]["memory"] == "512Mi" and resources["limits"]["memory"] == "1Gi"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert ports[container[probe]["httpGet"]["port"]] == 8080
    # The image's entrypoint is `passaparola`: the daemon with its web app beside it, config from the ConfigMap.
    assert container["args"] == ["run"] and "command" not in container
    env = {e["name"]: e for e in container["env"]}
    assert env["PASSAPAROLA_CONFIG"]["value"] == "/etc/passaparola/passaparola.toml"
    assert env["PASSAPAROLA_WEB__ENABLED"]["value"] == "true" and env["PASSAPAROLA_WEB__PORT"]["value"] == "8080"
    assert env["PASSAPAROLA_STORAGE__PATH"]["value"].startswith("/data/")
    # Secrets never as plain values: a mounted Secret's files, or secretKeyRef.
    for var in env.values():
        if "value" in var:
            assert not re.search("TOKEN|SECRET|PASSWORD|_URL", var["name"]), f"{var['name']}: a secret in plain text"
        else:
            assert "secretKeyRef" in var["valueFrom"], var["name"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["secrets"]["mountPath"] == SECRETS_DIR and mounts["secrets"]["readOnly"] is True
    assert "secret" in volumes["secrets"] and volumes["secrets"]["secret"]["defaultMode"] == 0o440
    assert mounts["config"]["readOnly"] is True and "configMap" in volumes["config"]
    assert "emptyDir" in volumes["tmp"] and mounts["tmp"]["mountPath"] == "/tmp"
    # The database on its own volume, from the StatefulSet's claim template (one PVC per brand's pod).
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" == mounts["data"]["name"] and "data" not in volumes
    assert mounts["data"]["mountPath"] == "/data" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def secret_files(value: Any) -> Iterator[str]:
    """The paths a config references as ``{ file = "..." }``."""
    if isinstance(value, dict):
        if set(value) == {"file"}:
            yield str(value["file"])
        else:
            for v in value.values():
                yield from secret_files(v)
    elif isinstance(value, list):
        for v in value:
            yield from secret_files(v)


def secret_keys(overlay: Path) -> set[str]:
    [generator] = kustomization(overlay)["secretGenerator"]
    keys = set()
    for env_file in generator["envs"]:
        for line in (overlay / env_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                keys.add(line.split("=", 1)[0])
    return keys


# -- file by file: runs everywhere ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_resource_file_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    docs = load_all(path)
    assert docs
    for doc in docs:
        validate(doc)


def test_the_base_statefulset_runs_one_locked_down_passaparola() -> None:
    [statefulset] = load_all(BASE / "statefulset.yaml")
    assert_locked_down(statefulset)
    assert statefulset["spec"]["serviceName"] == "passaparola-headless"
    assert {s["metadata"]["name"] for s in load_all(BASE / "services.yaml")} == {
        "passaparola-headless",
        "passaparola-web",
    }


def test_there_are_brands_to_deploy_of_this_release() -> None:
    assert [p.name for p in OVERLAYS] == ["caffe-aurora", "pasticceria-stella"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    for folder in [BASE, *OVERLAYS]:
        [image] = kustomization(folder)["images"]
        assert image["name"] == "passaparola" and image["newTag"] == version, folder


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_is_a_brand_in_its_own_namespace(overlay: Path) -> None:
    brand = overlay.name
    spec = kustomization(overlay)
    assert spec["namespace"] == f"passaparola-{brand}" and spec["namePrefix"] == f"{brand}-"
    assert spec["resources"] == ["namespace.yaml", "../../base"]
    [labels] = spec["labels"]
    assert labels["pairs"] == {"passaparola.brand": brand} and labels["includeSelectors"] is True
    [namespace] = load_all(overlay / "namespace.yaml")
    assert namespace["metadata"]["name"] == spec["namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    [config] = spec["configMapGenerator"]
    assert config == {"name": "passaparola-config", "behavior": "replace", "files": ["passaparola.toml"]}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_brands_secret_holds_the_files_its_config_reads(overlay: Path) -> None:
    data = tomllib.loads((overlay / "passaparola.toml").read_text(encoding="utf-8"))
    paths = set(secret_files(data))
    assert paths and all(p.startswith(f"{SECRETS_DIR}/") for p in paths)
    assert {p.removeprefix(f"{SECRETS_DIR}/") for p in paths} == secret_keys(overlay)
    [token] = [t for t in data["web"]["tokens"] if t["name"] == "prometheus"]
    assert token["role"] == "admin"  # /metrics asks for admin
    assert token["token"] == {"file": f"{SECRETS_DIR}/metrics_token"}
    placeholders = (overlay / "secrets.env").read_text(encoding="utf-8")
    assert set(re.findall(r"=(.*)", placeholders)) == {"CHANGE-ME"}


def config_env(statefulset: dict[str, Any]) -> dict[str, str]:
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_brands_config_loads_with_real_secrets_and_refuses_the_placeholders(overlay: Path, tmp_path: Path) -> None:
    """The overlay's passaparola.toml with the StatefulSet's environment, as the pod starts it (secrets files
    moved under tmp_path): real values load, the committed CHANGE-ME placeholders stop it at the config check."""
    [statefulset] = load_all(BASE / "statefulset.yaml")
    environ = config_env(statefulset) | {"PASSAPAROLA_STORAGE__PATH": str(tmp_path / "passaparola.db")}
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    text = (overlay / "passaparola.toml").read_text(encoding="utf-8").replace(SECRETS_DIR, str(secrets))
    for key in secret_keys(overlay):
        value = "mailtos://care:pw@mail.example?to=care@example.com" if key.endswith("_url") else "x" * 40
        (secrets / key).write_text(value + "\n", encoding="utf-8")
    config = tmp_path / "passaparola.toml"
    config.write_text(text, encoding="utf-8")
    settings = configuration.load(config, environ=environ)
    assert settings.web.enabled and settings.web.host == "0.0.0.0" and settings.web.port == 8080
    assert settings.web.tokens[0].token.get_secret_value() == "x" * 40
    for key in secret_keys(overlay):
        (secrets / key).write_text("CHANGE-ME\n", encoding="utf-8")
    with pytest.raises(configuration.ConfigError):
        configuration.load(config, environ=environ)


def scrape_jobs() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    return {job["job_name"]: job for job in data["scrape_configs"]}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_prometheus_scrapes_each_brand_with_its_own_token_and_labels_it(overlay: Path) -> None:
    brand = overlay.name
    job = scrape_jobs()[f"passaparola-{brand}"]
    assert job["metrics_path"] == "/metrics"
    [discovery] = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod" and discovery["namespaces"]["names"] == [kustomization(overlay)["namespace"]]
    assert job["authorization"]["credentials_file"] == f"/etc/prometheus/passaparola-tokens/{brand}"
    tokens = (K8S / "prometheus" / "tokens.env").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(brand)}=", tokens, re.MULTILINE)
    relabel = {r.get("target_label"): r for r in job["relabel_configs"]}
    assert relabel["brand"]["source_labels"] == ["__meta_kubernetes_pod_label_passaparola_brand"]
    [statefulset] = load_all(BASE / "statefulset.yaml")
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"


# -- rendered with kustomize, where kubectl is installed --------------------------------------------------------


def kustomize(folder: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_renders_valid_locked_down_and_its_own(overlay: Path) -> None:
    brand = overlay.name
    docs = kustomize(overlay)
    for doc in docs:
        validate(doc)
    namespace = f"passaparola-{brand}"
    assert [d["metadata"]["name"] for d in of_kind(docs, "Namespace")] == [namespace]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace
            assert doc["metadata"]["name"].startswith(f"{brand}-")
        assert doc["metadata"]["labels"]["passaparola.brand"] == brand
    [statefulset] = of_kind(docs, "StatefulSet")
    assert_locked_down(statefulset)
    pod = statefulset["spec"]["template"]
    assert pod["metadata"]["labels"]["passaparola.brand"] == brand  # what the scrape turns into label "brand"
    assert statefulset["spec"]["selector"]["matchLabels"]["passaparola.brand"] == brand
    assert statefulset["spec"]["serviceName"] == f"{brand}-passaparola-headless"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    [secret] = of_kind(docs, "Secret")
    [config] = of_kind(docs, "ConfigMap")
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert set(secret["data"]) == secret_keys(overlay)
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    assert config["data"]["passaparola.toml"] == (overlay / "passaparola.toml").read_text(encoding="utf-8")
    for service in of_kind(docs, "Service"):
        assert service["spec"]["selector"]["passaparola.brand"] == brand
    [binding] = of_kind(docs, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]


@needs_kubectl
def test_the_brands_share_nothing() -> None:
    """Each brand its own namespace, StatefulSet (so its own PVC, data-<statefulset>-0 in its namespace), Secret."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for overlay in OVERLAYS:
        for doc in kustomize(overlay):
            if doc["kind"] in ("Namespace", "StatefulSet", "Secret", "ConfigMap"):
                seen.setdefault(doc["kind"], set()).add((doc["metadata"].get("namespace", ""), doc["metadata"]["name"]))
    assert all(len(names) == len(OVERLAYS) for names in seen.values()), seen
    assert len({namespace for namespace, _ in seen["StatefulSet"]}) == len(OVERLAYS)


@needs_kubectl
def test_the_servicemonitor_component_reads_the_brands_own_secret(tmp_path: Path) -> None:
    shutil.copytree(K8S, tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / OVERLAYS[0].name
    text = (overlay / "kustomization.yaml").read_text(encoding="utf-8")
    enabled = text.replace(
        "# components:\n#   - ../../components/servicemonitor", "components:\n  - ../../components/servicemonitor"
    )
    assert enabled != text
    (overlay / "kustomization.yaml").write_text(enabled, encoding="utf-8")
    docs = kustomize(overlay)
    [monitor] = of_kind(docs, "ServiceMonitor")
    [secret] = of_kind(docs, "Secret")
    validate(monitor)
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == secret["metadata"]["name"]
    [web] = [s for s in of_kind(docs, "Service") if s["metadata"]["labels"].get("passaparola.service") == "web"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= web["metadata"]["labels"].items()


@needs_kubectl
@pytest.mark.parametrize("folder", [K8S / "prometheus", GRAFANA], ids=["prometheus", "grafana"])
def test_the_monitoring_kustomizations_render_valid(folder: Path) -> None:
    docs = kustomize(folder)
    assert docs
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == "monitoring"


# -- Grafana ---------------------------------------------------------------------------------------------------


def exported() -> tuple[set[str], dict[str, set[str]]]:
    """The series names /metrics exports (a counter's with its ``_total``), and each label with the values seen,
    from a store seeded so that every family has samples."""
    store = Store.memory()
    try:
        for n, label in enumerate(["negative", "positive", "neutral"]):
            mention = Mention(
                platform="x",
                platform_id=str(n),
                source="community",
                text="Capsule rotte",
                published_at=T0 - timedelta(hours=n + 1),
                author=Author("x", f"a{n}", f"user{n}"),
                tags={"sentiment": label, "language": "it"},
            )
            store.save_poll("community", "feed", Poll(mentions=(mention,)), T0 - timedelta(hours=n + 1))
        store.health.record_failure("community", "feed", "timeout", T0, T0 + timedelta(minutes=5))
        store.health.beat(T0)
        store.health.record_job("rules", 0.5, True, T0)
        store.enqueue([Alert(key="spike:1", kind=NegativeSpike.kind, title="t", body="b", route="care")], T0)
        store.outbox.mark_sent("spike:1", T0)
        text = render(store, lambda: T0).decode()
    finally:
        store.close()
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])  # a counter's as its samples have it, with _total
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
            for label, value in re.findall(r'(\w+)="([^"]*)"', line):
                labels.setdefault(label, set()).add(value)
    return names, labels


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def exprs(board: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_dashboard_queries_only_what_passaparola_exports() -> None:
    names, labels = exported()
    assert "passaparola_negative_share" in names and "passaparola_alerts_sent_total" in names
    queries = exprs(dashboard())
    assert len(queries) > 10
    used: set[str] = set()
    for expr in queries:
        used |= set(re.findall(r"\bpassaparola_[a-z0-9_]+", expr))
        grouped = re.findall(r"\bby \(([^)]*)\)", expr) + re.findall(r"label_values\([^,]+, (\w+)\)", expr)
        for label in {name.strip() for group in grouped for name in group.split(",")}:
            assert label in labels or label in SCRAPE_LABELS, f"{expr}: no label {label!r} in /metrics"
        for label, op, value in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', expr):
            if label in SCRAPE_LABELS:
                assert value == "$brand", expr
                continue
            assert label in labels, f"{expr}: no label {label!r} in /metrics"
            wanted = value.split("|") if op == "=~" else [value]
            known = labels[label] | ({VolumeSpike.kind, NegativeSpike.kind} if label == "kind" else set())
            assert set(wanted) <= known, f"{expr}: {label} is never {set(wanted) - known}"
    assert used and used <= names, f"not exported by /metrics: {sorted(used - names)}"


def test_the_dashboard_shows_every_family_for_every_brand() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Open and overdue", "SLA met", "Negative share", "Spikes", "Source health"]
    [brand] = board["templating"]["list"]
    assert brand["name"] == "brand" and brand["multi"] and brand["includeAll"]
    for panel in panels(board):
        for target in panel.get("targets", []):
            assert 'brand=~"$brand"' in target["expr"], f"{panel['title']}: not filtered by brand"
            assert re.search(r"\bby \([^)]*\bbrand\b", target["expr"]), f"{panel['title']}: not one series per brand"
            assert "{{brand}}" in target["legendFormat"]
    queries = "\n".join(exprs(board))
    for metric in (
        "passaparola_unanswered",
        "passaparola_sla_compliance_ratio",
        "passaparola_negative_share",
        "passaparola_alerts_sent_total",
        "passaparola_source_consecutive_failures",
        "passaparola_source_last_success_timestamp_seconds",
    ):
        assert metric in queries
    assert 'sla_state="breached"' in queries  # overdue


def test_every_panel_reads_the_provisioned_datasource() -> None:
    [datasource] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    board = dashboard()
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", expected) == expected, panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == expected
    [provider] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "passaparola.yaml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] in (GRAFANA / "kustomization.yaml").read_text()
    generators = {g["name"]: g["files"] for g in kustomization(GRAFANA)["configMapGenerator"]}
    assert generators["passaparola-grafana-dashboards"] == ["dashboards/passaparola-brands.json"]
