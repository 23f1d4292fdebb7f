"""The Kubernetes manifests build with kustomize and agree with the code's configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.config import GatewaySettings
from services.alert.config import AlertSettings
from services.common.config import CommonSettings
from services.customer.config import CustomerSettings
from services.ledger.config import LedgerSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [CommonSettings, CustomerSettings, LedgerSettings, AlertSettings, GatewaySettings]
SERVICES = {"customer": CustomerSettings, "ledger": LedgerSettings, "alert": AlertSettings}


def known_variables() -> set[str]:
    names = set()
    for cls in SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def build(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to check k8s/"
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / overlay)], check=True, capture_output=True,
                         text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("overlay", ["base", "overlays/dev", "overlays/prod"])
def test_every_variable_is_a_real_setting_and_ports_agree(overlay):
    docs = build(overlay)
    known = known_variables()
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("crowdpack-config"))
    assert set(config["data"]) <= known, set(config["data"]) - known
    deployments = of_kind(docs, "Deployment")
    services = of_kind(docs, "Service")
    assert set(deployments) == {"customer", "ledger", "alert", "gateway"}
    for name, settings in SERVICES.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container.get("env", [])}
        assert set(env) <= known, set(env) - known
        port = int(env[f"CROWDPACK_{name.upper()}_GRPC_PORT"]["value"])
        assert port == settings.model_fields["grpc_port"].default
        assert {p["containerPort"] for p in container["ports"]} == {
            port, int(env[f"CROWDPACK_{name.upper()}_METRICS_PORT"]["value"])}
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert {p["port"] for p in services[name]["spec"]["ports"]} >= {port}
        assert container["args"] == ["python", "-m", f"services.{name}"]
    gateway_addresses = {k: v for k, v in config["data"].items() if k.startswith("CROWDPACK_GATEWAY_")
                         and k.endswith("_ADDRESS")}
    for key, address in gateway_addresses.items():
        host, port = address.split(":")
        assert host in services and int(port) in {p["port"] for p in services[host]["spec"]["ports"]}, key


def test_prod_runs_every_service_on_postgres_with_replicas_and_no_sqlite_volume():
    docs = build("overlays/prod")
    assert not of_kind(docs, "PersistentVolumeClaim")
    deployments = of_kind(docs, "Deployment")
    for name in SERVICES:
        spec = deployments[name]["spec"]
        assert spec["replicas"] >= 2 and spec["strategy"]["type"] == "RollingUpdate"
        pod = spec["template"]["spec"]
        assert "volumes" not in pod
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        ref = env[f"CROWDPACK_{name.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "crowdpack-database", "key": name}
    assert all(d["metadata"]["namespace"] == "crowdpack" for d in docs)
    assert {c["image"] for d in deployments.values() for c in d["spec"]["template"]["spec"]["containers"]} == {
        "registry.example.internal/crowdpack:0.1.0"}


def test_dev_keeps_sqlite_state_on_a_volume_with_one_replica():
    docs = build("overlays/dev")
    claims = of_kind(docs, "PersistentVolumeClaim")
    for name in SERVICES:
        spec = of_kind(docs, "Deployment")[name]["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
        assert spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] in claims
