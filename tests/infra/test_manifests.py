"""infra/ validated offline: Kubernetes manifests against the bundled Kubernetes schemas
(kubernetes-validate, strict: unknown fields fail), the compose file against the compose-spec
schema vendored in check-jsonschema, and the operational promises each file makes."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import runpy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from attendwise.platform.jobs import QUEUES

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S_VERSION = "1.37.0"
MANIFESTS = sorted(p for p in (INFRA / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_is_valid_kubernetes(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest():
    web = copy.deepcopy(by_kind("Deployment")["attendwise-web"])
    pod(web)["containers"][0]["readinessProbe"]["httpGet"]["prot"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def test_web_probes_use_the_apps_health_routes(app):
    web = pod(by_kind("Deployment")["attendwise-web"])["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/readyz", "/healthz", "/metrics"} <= rules
    assert by_kind("Service")["attendwise-web"]["spec"]["ports"][0]["targetPort"] == "http"


def test_every_pod_runs_as_non_root_with_limits_and_secrets_from_the_cluster():
    deployments = {**by_kind("Deployment"), **by_kind("Job")}
    assert set(deployments) == {
        "attendwise-web",
        "attendwise-worker",
        "attendwise-pdf-worker",
        "attendwise-scheduler",
        "attendwise-migrate",
    }
    for name, workload in deployments.items():
        spec = pod(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert {"secretRef": {"name": "attendwise-secrets"}} in container["envFrom"], name
            assert not any("SECRET" in e["name"] for e in container.get("env", [])), name


def test_one_scheduler_and_workers_scaled_by_queue_length_over_every_queue():
    scheduler = by_kind("Deployment")["attendwise-scheduler"]
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"
    covered = set()
    for hpa in by_kind("HorizontalPodAutoscaler").values():
        target = by_kind("Deployment")[hpa["spec"]["scaleTargetRef"]["name"]]
        listened = set(pod(target)["containers"][0]["command"][2:])
        scaled_on = {
            m["external"]["metric"]["selector"]["matchLabels"]["queue"] for m in hpa["spec"]["metrics"]
        }
        assert scaled_on == listened
        assert all(
            m["external"]["metric"]["name"] == "attendwise_queue_length" for m in hpa["spec"]["metrics"]
        )
        covered |= listened
        # SIGTERM lets the current job finish: the grace period outlasts the job timeout.
        assert pod(target)["terminationGracePeriodSeconds"] > 600
    assert covered == set(QUEUES)


def test_pdf_workers_may_reach_only_postgresql_redis_the_document_store_and_dns():
    policy = by_kind("NetworkPolicy")["attendwise-pdf-worker-no-egress"]
    pdf = by_kind("Deployment")["attendwise-pdf-worker"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= pdf["spec"]["template"]["metadata"]["labels"].items()
    )
    assert "Egress" in policy["spec"]["policyTypes"]
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432, 6379, 9000]
    assert all("ipBlock" not in peer for rule in policy["spec"]["egress"] for peer in rule["to"])
    assert pod(pdf)["containers"][0]["command"] == ["attendwise", "worker", "pdf"]


def test_compose_file_is_valid_against_the_compose_spec():
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(compose())] == []
    broken = compose()
    broken["services"]["web"]["restart"] = ["always"]
    assert list(validator.iter_errors(broken))


def test_compose_runs_every_process_with_redis_that_keeps_jobs():
    services = compose()["services"]
    assert {"web", "worker", "pdf-worker", "scheduler", "migrate", "postgres", "redis"} <= set(services)
    redis = services["redis"]["command"]
    assert "--maxmemory-policy noeviction" in redis
    assert "--appendonly yes" in redis
    assert services["migrate"]["command"] == ["attendwise", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["pdf-worker"]["networks"] == ["backend"]
    assert compose()["networks"]["backend"]["internal"] is True
    assert services["scheduler"]["deploy"]["replicas"] == 1


def test_dockerfile_is_multi_stage_non_root_without_compilers_in_the_final_image():
    text = (INFRA / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    runtime = stages[-1]
    assert "AS runtime" in runtime.splitlines()[0]
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|-dev\b", runtime)
    assert re.search(r"^USER 10001", runtime, flags=re.M)
    for library in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b"):
        assert library in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime


def test_gunicorn_config_sizes_workers_from_cores_and_the_pool_from_threads(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2})
    monkeypatch.delenv("GUNICORN_WORKERS", raising=False)
    monkeypatch.setenv("GUNICORN_THREADS", "6")
    conf = runpy.run_path(str(INFRA / "gunicorn.conf.py"))
    assert conf["workers"] == 7
    assert conf["threads"] == 6
    assert conf["timeout"] > 0
    assert conf["graceful_timeout"] > 0
    assert conf["accesslog"] is None
    assert "'pool_size': 6" in conf["wsgi_app"]
    assert conf["wsgi_app"].startswith("attendwise.platform.app:create_app(")
