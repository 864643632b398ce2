"""Rendering the Helm releases of an offline plan through the vendored chart packages, with Helm 3 from PyPI,
and the checks every render must pass: strict Kubernetes schemas, the CRD schemas the releases ship, and
values keys that the chart knows."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from pixelstream.addons.charts import Chart, deep_merge
from pixelstream.tools.chart_packages import helm_binary, package_path
from pixelstream.tools.offline import HELM_RELEASE, Plan

# Served by every cluster but missing from `helm template`'s default capabilities (a chart that registers an
# aggregated API would fall back to the long-removed apiregistration.k8s.io/v1beta1 without it).
CLUSTER_API_VERSIONS = ("apiregistration.k8s.io/v1",)
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job")


class _Loader(yaml.CSafeLoader):
    """YAML 1.1 reads a bare `=` (an enum value in the Prometheus operator's CRDs) as the `value` tag."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@dataclass
class Render:
    """One release of a plan rendered by `helm template`."""

    release: dict[str, Any]
    """As the plan wrote it: release, chart, version, repository, namespace, values."""
    returncode: int
    stderr: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.release["release"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def app(self, kind: str, app: str) -> dict[str, Any]:
        """The one `kind` labelled `app.kubernetes.io/name: <app>` (subcharts name theirs after the release)."""
        matches = [
            o for o in self.of_kind(kind) if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == app
        ]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} {kind} of {app} in the {self.name} render")
        return matches[0]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} {kind} named {name} in the {self.name} render")
        return matches[0]


def helm_command(release: Mapping[str, Any], kube_version: str, api_versions: Iterable[str], values: Path) -> list[str]:
    chart = Chart(release["chart"], release["version"], release["repository"])
    command = [str(helm_binary()), "template", release["release"], str(package_path(chart))]
    command += ["--namespace", release["namespace"], "--values", str(values), "--kube-version", kube_version]
    command += ["--include-crds"]
    for version in (*CLUSTER_API_VERSIONS, *api_versions):
        command += ["--api-versions", version]
    return command


_RENDERS: dict[str, Render] = {}


def render(release: Mapping[str, Any], kube_version: str, api_versions: Iterable[str], workdir: Path) -> Render:
    """`helm template` of one release; the same release with the same values and cluster is rendered once."""
    api_versions = sorted(api_versions)
    key = json.dumps([release, kube_version, api_versions], sort_keys=True)
    if key not in _RENDERS:
        _RENDERS[key] = _render(release, kube_version, api_versions, workdir)
    return _RENDERS[key]


def _render(release: Mapping[str, Any], kube_version: str, api_versions: list[str], workdir: Path) -> Render:
    values = workdir / f"{release['release']}.values.yaml"
    values.write_text(yaml.safe_dump(release["values"], sort_keys=False))
    done = subprocess.run(
        helm_command(release, kube_version, api_versions, values), capture_output=True, text=True, timeout=120
    )
    result = Render(dict(release), done.returncode, done.stderr)
    if done.returncode == 0:
        result.objects = [o for o in yaml.load_all(done.stdout, Loader=_Loader) if o]
    return result


def served_api_versions(renders: Iterable[Render]) -> set[str]:
    """`group/version` and `group/version/Kind` of every CustomResourceDefinition in `renders`."""
    versions: set[str] = set()
    for crd in (o for r in renders for o in r.of_kind("CustomResourceDefinition")):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for served in crd["spec"]["versions"]:
            versions |= {f"{group}/{served['name']}", f"{group}/{served['name']}/{kind}"}
    return versions


def render_plan(plan: Plan, directory: Path, workdir: Path) -> dict[str, Render]:
    """Every release the plan wrote to `directory/helm/`, each with the cluster's API versions plus the CRDs of
    the releases it waits for (what a cluster has when Pulumi installs it)."""
    kube_version = plan.outputs["kubernetesVersion"].removeprefix("v")
    written = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((directory / "helm").glob("*.yaml"))}
    urns = {r.urn: r.name for r in plan.of_type(HELM_RELEASE)}
    renders: dict[str, Render] = {}
    pending = dict(written)
    while pending:
        for name, release in list(pending.items()):
            needs = {urns[d] for d in plan.named(HELM_RELEASE, name).dependencies if d in urns}
            if needs <= set(renders):
                api_versions = served_api_versions(renders[n] for n in needs)
                renders[name] = render(release, kube_version, api_versions, workdir)
                del pending[name]
    return renders


def _strict(schema: Any) -> Any:
    """A CRD schema that, like the API server's strict field validation, rejects fields it does not define."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def crd_schemas(renders: Iterable[Render]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema of every served version of every CRD in `renders`."""
    schemas = {}
    for crd in (o for r in renders for o in r.of_kind("CustomResourceDefinition")):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # The API server adds these to every custom resource's schema.
                schema.setdefault("properties", {}).update(
                    apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
                )
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _where(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top)"


def schema_problems(
    objects: Iterable[dict[str, Any]], kube_version: str, crds: Mapping[tuple[str, str], dict[str, Any]]
) -> list[str]:
    """Strict Kubernetes schemas for built-in kinds; the CRD's own schema for custom resources."""
    problems = []
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        what = f"{obj['kind']} {obj['metadata'].get('name')}"
        if key in crds:
            for error in jsonschema.Draft7Validator(crds[key]).iter_errors(obj):
                problems.append(f"{what}: {_where(error.absolute_path)}: {error.message[:300]}")
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{what}: {_where(error.path)}: {error.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {key[0]} {key[1]}: neither built in nor a CRD of the releases")
    return problems


@cache
def chart_defaults(package: Path) -> dict[str, Any]:
    """values.yaml of a packaged chart, each dependency packaged inside it merged in under its name (or alias)
    the way Helm passes values to subcharts."""
    with tarfile.open(package) as archive:
        files = {m.name: m for m in archive.getmembers()}
        root = next(n.split("/")[0] for n in files if n.endswith("/Chart.yaml") and n.count("/") == 1)

        def read(name: str) -> Any:
            return yaml.load(archive.extractfile(files[name]).read(), Loader=_Loader) if name in files else None

        values = read(f"{root}/values.yaml") or {}
        for dependency in (read(f"{root}/Chart.yaml") or {}).get("dependencies") or []:
            key = dependency.get("alias") or dependency["name"]
            sub = read(f"{root}/charts/{dependency['name']}/values.yaml")
            if sub is not None:
                values[key] = deep_merge(sub, values.get(key) or {})
    return values


def template_references(package: Path) -> set[str]:
    """The value paths a packaged chart's own templates read (`.Values.config.existingSecret`): keys a chart
    documents only in a comment of its values.yaml are real when a template reads them."""
    with tarfile.open(package) as archive:
        texts = [
            archive.extractfile(m).read().decode(errors="replace")
            for m in archive.getmembers()
            if m.isfile() and "/templates/" in m.name and m.name.count("/charts/") == 0
        ]
    return {match for text in texts for match in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text)}


# Values that charts hand to Kubernetes as they are, whatever their defaults hold: the API server's schema, not
# the chart's values.yaml, says which keys they take (and the strict schema check of the render does).
KUBERNETES_TYPED = {"nodeSelector", "annotations", "labels", "resources", "affinity", "securityContext"}


def unknown_keys(ours: Any, defaults: Any, path: str = "") -> Iterator[str]:
    """Key paths of `ours` that the chart's `defaults` do not have. A mapping whose default is empty is free-form
    (extra configuration, rule maps), as are Kubernetes-typed values: anything goes below them. `global` is
    Helm's own."""
    if not isinstance(ours, dict) or not isinstance(defaults, dict) or not defaults:
        return
    for key, value in ours.items():
        where = f"{path}.{key}" if path else key
        if key not in defaults and not (key == "global" and not path):
            yield where
        elif key in defaults and key not in KUBERNETES_TYPED:
            yield from unknown_keys(value, defaults[key], where)


def pod_specs(objects: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, pod spec) of every workload, and the pod-spec fields of the Prometheus operator's workloads."""
    for obj in objects:
        what = f"{obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] in WORKLOAD_KINDS:
            yield what, obj["spec"]["template"]["spec"]
        elif obj["kind"] in ("Prometheus", "Alertmanager"):
            yield what, obj["spec"]
