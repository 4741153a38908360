"""Shared helpers of the shipping checks: paths, YAML loading, rendering the chart with Helm's own engine
(helm-python-sdk wraps Helm v4's Go SDK: same template engine, same values merge, same schema validation as
`helm install`, offline)."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = MANIFESTS / "helm" / "spot-termination-notice-handler"
VALUES_DIR = MANIFESTS / "tests" / "values"
RELEASE = "spot-termination-notice-handler"
NAMESPACE = "kube-system"
# Labels only Helm adds; the plain manifests carry every other label of the chart.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def load_docs(text: str, source: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of `text`; each must be a mapping."""
    docs = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{source}: a YAML document is a {type(doc).__name__}, not a mapping")
        docs.append(doc)
    return docs


def kubectl_f_files() -> list[pathlib.Path]:
    """The files `kubectl apply -f manifests/` reads: *.json, *.yaml, *.yml directly in the directory."""
    return sorted(p for p in MANIFESTS.iterdir() if p.is_file() and p.suffix in (".json", ".yaml", ".yml"))


def plain_objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object `kubectl apply -f manifests/` would apply."""
    out = []
    for path in kubectl_f_files():
        for doc in load_docs(path.read_text(), path.name):
            out.append((path.name, doc))
    return out


def _helm():
    import helm_python  # noqa: PLC0415  (imported late: a clear message from the caller if missing)

    return helm_python


def values_file(name: str) -> dict[str, Any]:
    """A values file of manifests/tests/values, parsed by Helm's own YAML reader (as `helm -f` does)."""
    return _helm().values_from_yaml((VALUES_DIR / name).read_text())


def render(values: dict[str, Any] | None, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm install` would render it.
    Raises helm_python.HelmValuesError when the values break values.schema.json."""
    helm = _helm()
    with helm.Chart.load(CHART) as chart:
        return chart.render(values=copy.deepcopy(values), name=name, namespace=namespace, is_install=True)


def rendered_objects(rendered: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in load_docs(text, path):
            out.append((path, doc))
    return out


def notes(rendered: dict[str, str]) -> str:
    return "".join(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def normalize(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what only Helm adds, so a rendered object compares equal to its plain manifest."""
    obj = copy.deepcopy(obj)
    labels = obj.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        for key in HELM_ONLY_LABELS:
            labels.pop(key, None)
    return obj


def version_key(v: str) -> tuple[int, ...]:
    """"1.29" -> (1, 29), for comparing Kubernetes versions."""
    return tuple(int(p) for p in v.split("."))


def key_of(obj: dict[str, Any]) -> str:
    md = obj.get("metadata", {})
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{md.get('name')}"


def find(objects, kind: str) -> list[dict[str, Any]]:
    return [o for _, o in objects if o.get("kind") == kind]


def container_env(daemonset: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict) of the first container."""
    env = daemonset["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}
