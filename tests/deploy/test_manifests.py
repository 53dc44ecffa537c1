"""deploy/k8s: every manifest validates against a current Kubernetes schema, the Jobs carry their
safety fields, no Secret holds a value, and each pod gives the worker what it reads.

Schemas: the newest Kubernetes release that the installed ``kubernetes-validate`` ships, in
strict mode (unknown fields are errors). Overlays are rendered by ``kubectl kustomize``.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    OVERLAYS,
    Doc,
    all_containers,
    by_kind,
    container,
    job_spec,
    load_all,
    normalised,
    one,
    plain_manifest_files,
    pod_spec,
    render,
    workload,
)
from worker.settings import CONFIG_ENV, ENV_PREFIX, SHARD_INDEX_ENV, Shard, add_run_arguments, load_run_config

SCHEMA_VERSION = max(all_versions(), key=Version)
#: Fail loudly on a stale kubernetes-validate: podFailurePolicy and backoffLimitPerIndex are GA in 1.33.
OLDEST_ACCEPTED = Version("1.33")
#: Custom resources (Prometheus Operator) have no schema in kubernetes-validate; test_alerts checks them.
CUSTOM_KINDS = frozenset({"PrometheusRule", "PodMonitor"})
CREDENTIAL_ENV = {"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"}
SECRET_TEMPLATE = K8S / "secret.example.yaml"
#: From the Dockerfile's USER line (test_dockerfile checks that line).
IMAGE_UID = 10001
#: Time after grace_s for the last flush, the checkpoint commit and the metrics push.
SHUTDOWN_MARGIN_S = 15


def _validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(request.param)


# ------------------------------------------------------------------------------ schema validation


def test_schema_is_a_current_kubernetes_release() -> None:
    assert Version(SCHEMA_VERSION) >= OLDEST_ACCEPTED, SCHEMA_VERSION


@pytest.mark.parametrize("path", plain_manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_plain_manifest_validates(path: Path) -> None:
    docs = load_all(path)
    assert docs
    for doc in docs:
        _validate(doc)


def test_every_overlay_renders_to_valid_objects(rendered: tuple[str, list[Doc]]) -> None:
    name, docs = rendered
    kinds = sorted(doc["kind"] for doc in docs)
    expected = ["ConfigMap", "CronJob" if name.startswith("nightly") else "Job", "Namespace", "ServiceAccount"]
    if name.endswith("-pvc"):
        expected.append("PersistentVolumeClaim")
    assert kinds == sorted(expected)
    for doc in docs:
        _validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "picscore"


@pytest.mark.parametrize("breakage", ["unknown field", "wrong type"])
def test_the_validator_rejects_a_broken_cronjob(breakage: str) -> None:
    doc = copy.deepcopy(one(load_all(K8S / "overlays/nightly/cronjob.yaml"), "CronJob"))
    if breakage == "unknown field":
        job_spec(doc)["backoffLimitt"] = 2
    else:
        job_spec(doc)["activeDeadlineSeconds"] = "six hours"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(doc)


def test_pvc_overlays_only_swap_the_state_volume() -> None:
    for base, variant in (("nightly", "nightly-pvc"), ("backfill", "backfill-pvc")):
        plain, pvc = workload(render(base)), workload(render(variant))
        claim = one(render(variant), "PersistentVolumeClaim")
        volumes = {v["name"]: v for v in pod_spec(pvc)["volumes"]}
        assert volumes["state"] == {"name": "state", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
        parallel = job_spec(pvc).get("parallelism", 1) > 1
        assert claim["spec"]["accessModes"] == (["ReadWriteMany"] if parallel else ["ReadWriteOnce"])
        # Everything else is the plain overlay's (the nightly variant adds only the prune step).
        for doc in (plain, pvc):
            spec = pod_spec(doc)
            spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "state"]
            spec.pop("initContainers", None)
        assert normalised(plain) == normalised(pvc)


# ------------------------------------------------------------------------------ safety fields


def _exit_codes(spec: Doc, action: str) -> set[int]:
    codes: set[int] = set()
    for rule in spec["podFailurePolicy"]["rules"]:
        if rule["action"] == action and "onExitCodes" in rule:
            assert rule["onExitCodes"]["operator"] == "In"
            assert rule["onExitCodes"]["containerName"] == "picscore"
            codes |= set(rule["onExitCodes"]["values"])
    return codes


def _ignores_disruptions(spec: Doc) -> bool:
    return any(rule["action"] == "Ignore" and rule.get("onPodConditions") == [{"type": "DisruptionTarget"}]
               for rule in spec["podFailurePolicy"]["rules"])


def test_nightly_cronjob_safety_fields() -> None:
    cron = one(render("nightly"), "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 6 * 3600
    assert spec["timeZone"]
    job = job_spec(cron)
    assert 0 < job["backoffLimit"] <= 3
    assert job["activeDeadlineSeconds"] <= 24 * 3600  # one night's run never overlaps the next schedule
    assert job["ttlSecondsAfterFinished"] > 0
    assert pod_spec(cron)["restartPolicy"] == "Never"  # podFailurePolicy requires it
    # Retrying cannot fix 1 (finished over the threshold), 2 (config), 3 (auth) or 5 (budget spent).
    assert _exit_codes(job, "FailJob") == {1, 2, 3, 5}
    assert _ignores_disruptions(job)


def test_backfill_indexed_job_safety_fields() -> None:
    job = one(render("backfill"), "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] > 1 and 1 <= spec["parallelism"] <= spec["completions"]
    assert 0 < spec["backoffLimitPerIndex"] <= 5
    assert "backoffLimit" not in spec  # with backoffLimitPerIndex, the per-index limit is the one that counts
    assert 0 <= spec["maxFailedIndexes"] <= spec["completions"]
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert _exit_codes(spec, "FailJob") == {2, 3}  # every shard would hit these
    assert _exit_codes(spec, "FailIndex") == {1}
    assert _ignores_disruptions(spec)
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert env["PICSCORE_SHARD_COUNT"] == str(spec["completions"])


def test_pods_are_locked_down(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    work = workload(docs)
    spec = pod_spec(work)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID and spec["securityContext"]["runAsGroup"] == IMAGE_UID
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
    for box in all_containers(work):
        context = box["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, box["name"]
        assert context["readOnlyRootFilesystem"] is True, box["name"]
        assert context["privileged"] is False, box["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, box["name"]
        assert box["resources"]["requests"]["memory"] and box["resources"]["limits"]["memory"], box["name"]
        assert re.fullmatch(r"[\w.-]+(/[\w.-]+)+:\d+\.\d+\.\d+", box["image"]), box["image"]  # a version, not latest


def test_service_account_and_namespace_are_set_up_for_rrsa() -> None:
    docs = render("nightly")
    account = one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"]
    assert one(docs, "Namespace")["metadata"]["labels"]["pod-identity.alibabacloud.com/injection"] == "on"
    for overlay in ("nightly", "backfill"):
        assert pod_spec(workload(render(overlay)))["serviceAccountName"] == account["metadata"]["name"]


# ------------------------------------------------------------------------------ secrets


def _all_docs() -> list[Doc]:
    docs = [doc for path in plain_manifest_files() for doc in load_all(path)]
    return docs + [doc for overlay in OVERLAYS for doc in render(overlay)]


def test_no_secret_carries_a_value() -> None:
    secrets = by_kind(_all_docs(), "Secret")
    assert secrets, "the Secret template is missing"
    for secret in secrets:
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        assert set(values) == {"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"}
        assert all(value in ("", None) for value in values.values()), secret["metadata"]["name"]


def test_overlays_never_apply_the_secret_template() -> None:
    """`kubectl apply -k` would replace the real Secret with the template's empty values."""
    for overlay in OVERLAYS:
        assert not by_kind(render(overlay), "Secret")


def test_nothing_in_deploy_looks_like_a_real_key() -> None:
    pattern = re.compile(r"LTAI[0-9A-Za-z]{12,}|-----BEGIN [A-Z ]*PRIVATE KEY")
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert not pattern.search(path.read_text(encoding="utf-8", errors="replace")), path


# ------------------------------------------------------------------------------ pod <-> worker


def _known_env() -> set[str]:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    fields = {action.dest for action in parser._actions if action.dest not in {"help", "config"}}
    return {ENV_PREFIX + name.upper() for name in fields} | {CONFIG_ENV} | CREDENTIAL_ENV


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value from variables defined before it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def _pod_environment(work: Doc, docs: list[Doc], tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment the worker would see, with the ConfigMap's file written under tmp_path."""
    box = container(work)
    mounts = {m["name"]: m for m in box["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(work)["volumes"]}
    env: dict[str, str] = {}
    helpers: set[str] = set()
    secret_template = one(load_all(SECRET_TEMPLATE), "Secret")
    for item in box["env"]:
        name = item["name"]
        if "value" in item:
            env[name] = _expand(item["value"], env)
        elif "fieldRef" in item["valueFrom"]:
            helpers.add(name)
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
            env[name] = "picscore-nightly-29000000"
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret_template["metadata"]["name"] and ref["key"] == name
            assert name in secret_template["stringData"]
            assert ref["optional"] is True  # so RRSA works without the Secret
            env[name] = {"OSS_ACCESS_KEY_ID": "LTAIdeploytest", "OSS_ACCESS_KEY_SECRET": "not-a-secret"}[name]
    unknown = set(env) - _known_env() - helpers
    assert not unknown, f"environment variables the worker does not read: {unknown}"
    # PICSCORE_CONFIG names a key of the ConfigMap mounted at its directory.
    config_path = Path(env[CONFIG_ENV])
    (mount,) = [m for m in mounts.values() if Path(m["mountPath"]) == config_path.parent]
    assert mount.get("readOnly") is True
    config_map_name = volumes[mount["name"]]["configMap"]["name"]
    (config_map,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == config_map_name]
    local = tmp_path / config_path.name
    local.write_text(config_map["data"][config_path.name], encoding="utf-8")
    env[CONFIG_ENV] = str(local)
    return env, config_path


def _writable_dirs(work: Doc) -> set[Path]:
    return {Path(m["mountPath"]) for m in container(work)["volumeMounts"] if not m.get("readOnly")}


def test_pod_environment_and_volumes_give_the_worker_what_it_reads(rendered: tuple[str, list[Doc]],
                                                                 tmp_path: Path) -> None:
    name, docs = rendered
    work = workload(docs)
    env, _ = _pod_environment(work, docs, tmp_path)
    spec = job_spec(work)
    if spec.get("completionMode") == "Indexed":
        env[SHARD_INDEX_ENV] = str(spec["completions"] - 1)  # Kubernetes sets it in each pod
    args = argparse.ArgumentParser()
    add_run_arguments(args)
    config = load_run_config(args.parse_args([]), env)
    assert not config.warnings
    if spec.get("completionMode") == "Indexed":
        assert config.shard == Shard(spec["completions"] - 1, spec["completions"])
        assert config.output.endswith(f"part-{config.shard.index}-of-{config.shard.count}.parquet")
    else:
        assert config.shard == Shard()
        assert config.checkpoint.name == "picscore-nightly-29000000.checkpoint.sqlite"
    # Everything the worker writes lands on a writable volume: root is read-only.
    writable = _writable_dirs(work)
    assert Path("/tmp") in writable
    assert config.checkpoint.parent in writable  # the checkpoint, its part files and the local result copy
    assert config.output.startswith("oss://")
    assert Path(config.checkpoint).is_absolute()
    # The metrics port is the one the pod declares (and the PodMonitor scrapes by name).
    ports = {p["name"]: p["containerPort"] for p in container(work)["ports"]}
    assert config.metrics_port == ports["metrics"] == 9108
    annotations = job_spec(work)["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.metrics_port)
    # SIGTERM: grace_s to finish requests in flight, then a margin to write and push.
    pod = pod_spec(work)
    assert config.grace_s + SHUTDOWN_MARGIN_S <= pod["terminationGracePeriodSeconds"]
    if config.time_budget_s is not None:
        assert config.time_budget_s + pod["terminationGracePeriodSeconds"] < spec["activeDeadlineSeconds"]
    # The failure threshold the alerts assume (picscore.rules.yaml) is the one configured.
    assert config.failure_threshold == (0.001 if name.startswith("nightly") else 0.005)


def test_state_volume_is_where_the_image_works() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", dockerfile.split(" AS runtime")[1], flags=re.M)
    for overlay in OVERLAYS:
        mounts = {m["name"]: m["mountPath"] for m in container(workload(render(overlay)))["volumeMounts"]}
        assert mounts["state"] == workdir


def test_prune_init_container_removes_only_old_checkpoints(tmp_path: Path) -> None:
    """Run the nightly-pvc init container's own command on a local folder."""
    cron = one(render("nightly-pvc"), "CronJob")
    (prune,) = pod_spec(cron)["initContainers"]
    state_mount = next(m["mountPath"] for m in prune["volumeMounts"] if m["name"] == "state")
    command = [str(tmp_path) if part == state_mount else part for part in prune["command"]]
    assert command != prune["command"]
    old = time.time() - 4 * 86400
    (tmp_path / "picscore-nightly-1.checkpoint.sqlite").write_text("old")
    (tmp_path / "picscore-nightly-1.checkpoint.parquet.parts").mkdir()
    (tmp_path / "picscore-nightly-1.checkpoint.parquet.parts" / "part-1.parquet").write_text("old")
    for entry in tmp_path.iterdir():
        os.utime(entry, (old, old))
    (tmp_path / "picscore-nightly-4.checkpoint.sqlite").write_text("tonight")
    subprocess.run(command, check=True, timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picscore-nightly-4.checkpoint.sqlite"]


def _values(doc: Any) -> list[Any]:
    if isinstance(doc, dict):
        return [v for value in doc.values() for v in _values(value)]
    if isinstance(doc, list):
        return [v for value in doc for v in _values(value)]
    return [doc]


def test_rendered_objects_have_no_unfilled_placeholders() -> None:
    for overlay in OVERLAYS:
        for value in _values(render(overlay)):
            assert not (isinstance(value, str) and re.search(r"\$\{|\{\{|TODO|CHANGEME", value)), value
