"""The deployment files, checked without a container runtime or a cluster (pip packages only; seconds):

- compose.yaml: podman-compose's `config` with the committed .env.example, and the compose-spec JSON
  schema (check-jsonschema's copy), on the file and on what podman-compose made of it;
- the Kubernetes manifests: every resource, strictly, against the schemas of the newest Kubernetes
  release kubernetes-validate knows and of 1.30; with kubectl installed, the kustomize output too;
- that every VIDGATE_* name they set is a real setting (config.py, nested with `__`), that every
  `vidgate ...` command line they run parses with the real CLI, that the settings they give build a
  valid Settings (channels included), and that the stop grace periods outlast the worker's drain time.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.deploy_support import (
    COMPOSE_CONFIG,
    COMPOSE_ENV_EXAMPLE,
    COMPOSE_FILE,
    DOCKERFILE,
    K8S,
    K8S_AUTOSCALING,
    K8S_BASE,
    ROOT,
    BadCommandLine,
    check_command,
    k8s_manifests,
    read_env_file,
    seconds,
    settings_from,
    toml_setting,
    unknown_settings,
    yaml_documents,
)
from vidgate.store.queue_stats import QueueStats

OLDEST_K8S = "1.30.0"  # the oldest release the manifests are kept valid for (sleep-free preStop, HPA v2)
VIDGATE_SERVICES = ("migrate", "api", "worker", "fake-upstream")


# compose.yaml ------------------------------------------------------------------------------------------


def compose_spec_validator() -> jsonschema.protocols.Validator:
    schema_file = importlib.resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """compose.yaml as podman-compose resolves it with .env.example (interpolated, anchors merged)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podman_compose",
            "--dry-run",
            "--env-file",
            str(COMPOSE_ENV_EXAMPLE),
            "-f",
            str(COMPOSE_FILE),
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_compose_file_and_its_resolved_config_follow_the_compose_spec(compose_config: dict[str, Any]) -> None:
    validator = compose_spec_validator()
    for what, doc in (("compose.yaml", yaml.safe_load(COMPOSE_FILE.read_text())), ("config", compose_config)):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{what}: {errors}"
    # The schema is strict enough to catch a misspelt key (else the check above proves little).
    broken = copy.deepcopy(compose_config)
    broken["services"]["api"]["stop_grace_periode"] = "45s"
    assert list(validator.iter_errors(broken))


def test_compose_runs_the_full_stack_with_migrations_first(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "s3",
        "s3-bucket",
        "fake-upstream",
        "migrate",
        "api",
        "worker",
    }
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["s3-bucket"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Two API processes (serve --workers 2) and two worker replicas.
    api_args = services["api"]["command"]
    assert api_args[api_args.index("--workers") + 1] == "2" and "--no-worker" in api_args
    assert services["worker"]["deploy"]["replicas"] == 2
    # Only the API is published, and on loopback.
    published = [(name, port) for name, svc in services.items() for port in svc.get("ports", [])]
    assert published == [("api", "127.0.0.1:8000:8000")], published


def test_compose_secrets_come_from_the_env_file_only() -> None:
    raw = COMPOSE_FILE.read_text()
    example = read_env_file(COMPOSE_ENV_EXAMPLE)
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "S3_SECRET_ACCESS_KEY", "VIDGATE_SECRET_KEY"):
        assert secret in example, f".env.example lacks {secret}"
        # Required (compose refuses to start without it), never defaulted in the compose file.
        assert re.search(r"\$\{" + secret + r":\?", raw), f"{secret} is not required in compose.yaml"
        assert not re.search(r"\$\{" + secret + r":-", raw), f"{secret} has a default in compose.yaml"
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", ".env"], cwd=ROOT, check=False, timeout=30
    )
    assert ignored.returncode == 0, ".env (the compose trial's secrets) must be git-ignored"
    # Nor do they reach an image: the build context leaves everything out but what it lists.
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert dockerignore[dockerignore.index("*") :].count("!.env") == 0 and "*" in dockerignore


def test_compose_settings_are_real_and_make_valid_settings(compose_config: dict[str, Any]) -> None:
    for name in VIDGATE_SERVICES:
        env = compose_config["services"][name].get("environment", {})
        assert unknown_settings([k for k in env if k.startswith("VIDGATE_")]) == [], name
    env = compose_config["services"]["worker"]["environment"]
    assert env["VIDGATE_CONFIG"] == "/etc/vidgate/vidgate.toml"
    mounts = compose_config["services"]["worker"]["volumes"]
    assert "./deploy/compose/vidgate.toml:/etc/vidgate/vidgate.toml:ro" in mounts
    settings = settings_from(env, COMPOSE_CONFIG)
    assert settings.resolved_database_url.startswith("postgresql+psycopg://vidgate:")
    assert settings.storage_url == "s3://vidgate/media" and settings.s3.allow_http
    assert settings.redis_url is not None and not settings.should_auto_migrate
    channels = {c.name: c for c in settings.channels}
    demo = channels["demo-upstream"]
    assert demo.kind == "openai" and demo.base_url == "http://fake-upstream:9000/v1"
    assert demo.api_key is not None and demo.api_key.get_secret_value() == env["DEMO_UPSTREAM_KEY"]
    assert channels["animate"].kind == "animate"
    # The fake upstream listens where the demo channel looks, with the key the channel sends.
    fake = compose_config["services"]["fake-upstream"]["command"]
    assert fake[fake.index("--port") + 1] == "9000" and fake[fake.index("--host") + 1] == "0.0.0.0"
    assert fake[fake.index("--api-key") + 1] == env["DEMO_UPSTREAM_KEY"]


def test_compose_commands_are_real_vidgate_commands(compose_config: dict[str, Any]) -> None:
    for name in VIDGATE_SERVICES:
        check_command(compose_config["services"][name]["command"])
    with pytest.raises(BadCommandLine):  # the check does refuse a wrong command line
        check_command(["serve", "--no-such-option"])
    with pytest.raises(BadCommandLine):
        check_command(["db", "migrate"])


def test_compose_stop_grace_outlasts_the_worker_drain(compose_config: dict[str, Any]) -> None:
    grace = float(toml_setting(COMPOSE_CONFIG, "worker", "shutdown_grace_seconds"))
    services = compose_config["services"]
    assert seconds(services["worker"]["stop_grace_period"]) >= grace + 15
    assert seconds(services["api"]["stop_grace_period"]) >= grace + 5 + 5  # uvicorn waits grace + 5


# Kubernetes --------------------------------------------------------------------------------------------


def k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_manifests() for doc in yaml_documents(path)]


@pytest.mark.parametrize("version", [kubernetes_validate.latest_version(), OLDEST_K8S])
def test_kubernetes_manifests_validate_strictly(version: str) -> None:
    resources = k8s_resources()
    kinds = sorted({doc["kind"] for _, doc in resources})
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PodDisruptionBudget",
        "Service",
    ], kinds
    for path, doc in resources:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']}: {exc}")
    # Strict validation does refuse a misspelt field.
    api = next(
        d for _, d in resources if d["kind"] == "Deployment" and d["metadata"]["name"] == "vidgate-api"
    )
    broken = copy.deepcopy(api)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def deployment(name: str) -> dict[str, Any]:
    return next(d for _, d in k8s_resources() if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def test_kubernetes_probes_grace_and_commands() -> None:
    env = read_env_file(K8S_BASE / "settings.env")
    grace = float(env["VIDGATE_WORKER__SHUTDOWN_GRACE_SECONDS"])
    api, worker = deployment("vidgate-api")["spec"]["template"]["spec"], deployment("vidgate-worker")["spec"]
    (container,) = api["containers"]
    assert container["args"] == ["serve", "--no-worker"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # preStop + uvicorn's graceful wait (grace + 5) + a margin.
    assert api["terminationGracePeriodSeconds"] >= 5 + grace + 5 + 5
    worker_pod = worker["template"]["spec"]
    assert worker_pod["containers"][0]["args"] == ["worker"]
    assert worker_pod["terminationGracePeriodSeconds"] >= grace + 15
    assert worker_pod["containers"][0]["ports"][0]["containerPort"] == int(
        env["VIDGATE_WORKER__METRICS_PORT"]
    )
    for _, doc in k8s_resources():
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if pod is None:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for each in [*pod.get("initContainers", []), *pod["containers"]]:
            if "args" in each:
                check_command(each["args"])
            else:  # the schema wait: a shell loop around `vidgate db current`
                assert "vidgate db current" in each["command"][-1]
                check_command(["db", "current"])
            refs = {r.get("configMapRef", r.get("secretRef", {})).get("name") for r in each["envFrom"]}
            assert refs == {"vidgate-env", "vidgate-secrets"}, each["name"]
    job = next(d for _, d in k8s_resources() if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_kubernetes_settings_are_real_and_make_valid_settings() -> None:
    settings_env = read_env_file(K8S_BASE / "settings.env")
    secrets_env = read_env_file(K8S_BASE / "secrets.env.example")
    toml = (K8S_BASE / "vidgate.toml").read_text()
    channel_keys = {
        c["api_key"].removeprefix("env:") for c in tomllib.loads(toml)["channels"] if "api_key" in c
    }
    assert channel_keys <= set(secrets_env), "a channel's env:NAME key is missing from secrets.env.example"
    assert "VIDGATE_SECRET_KEY" in secrets_env
    assert unknown_settings([*settings_env, *(k for k in secrets_env if k not in channel_keys)]) == []
    assert set(settings_env).isdisjoint(secrets_env)
    settings = settings_from({**settings_env, **secrets_env}, K8S_BASE / "vidgate.toml")
    assert not settings.embedded_worker and not settings.should_auto_migrate
    assert settings.worker.metrics_port == int(settings_env["VIDGATE_WORKER__METRICS_PORT"])
    assert {c.name for c in settings.channels} == {"upstream", "animate"}
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", "deploy/kubernetes/base/secrets.env"],
        cwd=ROOT,
        check=False,
        timeout=30,
    )
    assert ignored.returncode == 0, "deploy/kubernetes/base/secrets.env must be git-ignored"


def test_kustomizations_name_every_manifest() -> None:
    base = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    overlay = yaml.safe_load((K8S_AUTOSCALING / "kustomization.yaml").read_text())
    listed = {K8S_BASE / r for r in base["resources"]} | {
        K8S_AUTOSCALING / r for r in overlay["resources"] if r != "../base"
    }
    assert listed == set(k8s_manifests())
    generated = [f for g in base["configMapGenerator"] for f in [*g.get("envs", []), *g.get("files", [])]]
    assert all((K8S_BASE / f).is_file() for f in generated), generated
    assert base["secretGenerator"][0]["envs"] == ["secrets.env"]
    assert base["namespace"] == overlay["namespace"]


def test_worker_autoscaling_uses_vidgate_queue_metrics() -> None:
    """The HPA's external metrics and the adapter's rule name gauges vidgate really exports."""
    exported = {family.name for family in QueueStats(None, None).collect()}  # type: ignore[arg-type]
    hpa = next(
        d for d in yaml_documents(K8S_AUTOSCALING / "hpa.yaml") if d["metadata"]["name"] == "vidgate-worker"
    )
    used = {m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert used and used <= exported, (used, exported)
    adapter = yaml.safe_load((K8S_AUTOSCALING / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    assert all(name in rule["seriesQuery"] for name in used)
    assert rule["metricsQuery"].startswith("max(")  # every pod reports the same database-wide value


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (its built-in kustomize) is not installed"
)
@pytest.mark.parametrize("overlay", ["base", "autoscaling"])
def test_kustomize_output_validates(tmp_path: Path, overlay: str) -> None:
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S, tree)
    shutil.copyfile(tree / "base" / "secrets.env.example", tree / "base" / "secrets.env")
    done = subprocess.run(
        ["kubectl", "kustomize", str(tree / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    for doc in docs:
        assert doc["metadata"].get("namespace") == "vidgate", doc["metadata"]
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Job"]
    expected += ["PodDisruptionBudget", "PodDisruptionBudget", "Secret", "Service"]
    if overlay == "autoscaling":
        expected += ["HorizontalPodAutoscaler", "HorizontalPodAutoscaler"]
    assert kinds == sorted(expected)
    # The generated names (with their hash) are what the pods refer to.
    names = {d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if pod:
            refs = {
                r.get("configMapRef", r.get("secretRef", {}))["name"] for r in pod["containers"][0]["envFrom"]
            }
            assert refs <= names, (refs, names)


# The image definition ----------------------------------------------------------------------------------


def test_dockerfile_targets_base_user_and_commands() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE=docker\.io/library/python:3\.\d+-slim$", text, re.M)
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert {alias for _, alias in stages} >= {"build", "runtime", "test", "diffusion"}
    assert all(
        image in ("${BASE}", "build", "image-base", "runtime", "diffusion-build") for image, _ in stages
    ), stages
    assert stages[-1] == ("runtime", "")  # `docker build .` without --target gives the runtime image
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^VOLUME \["/data"\]$', text, re.M)
    assert re.search(r'^ENTRYPOINT \["vidgate"\]$', text, re.M) and re.search(
        r'^CMD \["serve"\]$', text, re.M
    )
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    env = dict(re.findall(r"(VIDGATE_[A-Z_]+)=(\S+)", text.split("FROM ${BASE} AS image-base", 1)[1]))
    assert unknown_settings(list(env)) == [] and env["VIDGATE_HOST"] == "0.0.0.0"
    assert env["VIDGATE_DATA_DIR"] == "/data"
    # The test target's smoke test is in the build context.
    assert (ROOT / "deploy/container/smoke_test.py").is_file()
    assert "!deploy/container/" in (ROOT / ".dockerignore").read_text()
