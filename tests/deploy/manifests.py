"""Read deploy/'s Kubernetes manifests for the tests: files, kustomize renderings, pod specs.

Rendering uses ``kubectl kustomize`` — whichever kubectl is installed (this machine's, or
Debian's ``kubernetes-client`` that ``.ci/run`` installs when there is none). The overlays are
written so that kustomize v2 (Debian's kubectl 1.20) and v5 render the same objects.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("nightly", "backfill", "nightly-pvc", "backfill-pvc")
#: Plain manifests: every YAML file under deploy/k8s except kustomizations and patches.
PATCH_FILES = frozenset({"state-volume.yaml"})

Doc = dict[str, Any]


def plain_manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p.name not in PATCH_FILES)


def load_all(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: run `make test-deps` (it installs Debian's kubernetes-client as "
                    "root, or prints the apt-get command)", pytrace=False)
    return found


def render(overlay: str) -> list[Doc]:
    """``kubectl kustomize deploy/k8s/overlays/<overlay>``, parsed."""
    done = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def job_spec(workload: Doc) -> Doc:
    """The Job spec of a Job or of a CronJob's template."""
    return workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]


def pod_spec(workload: Doc) -> Doc:
    return job_spec(workload)["template"]["spec"]


def container(workload: Doc, name: str = "picscore") -> Doc:
    (found,) = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    return found


def all_containers(workload: Doc) -> Iterator[Doc]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workload(docs: list[Doc]) -> Doc:
    found = [doc for doc in docs if doc["kind"] in {"CronJob", "Job"}]
    assert len(found) == 1
    return found[0]


def normalised(doc: Any) -> Any:
    """Lists of named items sorted by name: kustomize versions order merged lists differently."""
    if isinstance(doc, dict):
        return {key: normalised(value) for key, value in doc.items()}
    if isinstance(doc, list):
        items = [normalised(item) for item in doc]
        if items and all(isinstance(item, dict) and "name" in item for item in items):
            return sorted(items, key=lambda item: str(item["name"]))
        return items
    return doc
