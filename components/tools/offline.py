"""The offline plan: run a Pulumi program in-process under Pulumi's mocks, with no CLI, no cloud and no cluster.

Every resource the program declares is captured with its type, name, parent and inputs (secret values
replaced by "[secret]"), and written to `build/<stack>/`: `resources.json`, `outputs.json`, one YAML file
per plain Kubernetes object in `manifests/`, and one file per Helm release in `helm/`.

    python -m pixelstream.tools.offline --stack dev            # what `make plan` runs

Tests and other projects use `run_offline` (any program) and `plan_stack` (a Pulumi project's stack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import runpy
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.stack import run_pulumi_func, wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from ..secrets import STACK_FILE_ENV
from ..stack_file import OFFLINE_PLACEHOLDERS, SECRET_PLACEHOLDER, StackSettings, read_stack_config

__all__ = ["OFFLINE_PLACEHOLDERS", "SECRET_PLACEHOLDER", "StackSettings", "read_stack_config"]

REDACTED = "[secret]"
OFFLINE_KUBECONFIG_TOKEN = "offline-kubeconfig-credential"
OFFLINE_PASSWORD_PREFIX = "offline-generated-password"
DEFAULT_REGION = "us-ashburn-1"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
STACK_TYPE = "pulumi:pulumi:Stack"
IAM_POLICY = "oci:Identity/policy:Policy"


@dataclass
class PlannedResource:
    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    ignore_changes: list[str] = field(default_factory=list)
    provider: str | None = None
    """The provider reference (`<provider urn>::<id>`) for resources given an explicit provider."""
    dependencies: list[str] = field(default_factory=list)
    """URNs of every resource this one waits for: explicit depends_on and those its inputs come from."""
    aliases: list[str] = field(default_factory=list)
    """Earlier URNs of this resource (Pulumi aliases), which an existing stack knows it by."""
    read: bool = False
    """Read, not managed (`get`, StackReference): the stack only looks at it."""

    def to_json(self, names: Mapping[str, str]) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "parent": names.get(self.parent) if self.parent else None,
            "custom": self.custom,
            "inputs": self.inputs,
            **({"ignoreChanges": self.ignore_changes} if self.ignore_changes else {}),
            **({"dependsOn": sorted(names.get(d, d) for d in self.dependencies)} if self.dependencies else {}),
            **({"aliases": sorted(self.aliases)} if self.aliases else {}),
            **({"read": True} if self.read else {}),
        }


@dataclass
class Plan:
    project: str
    stack: str
    resources: list[PlannedResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """What the program logged at warning level or above (pulumi.log.warn), as `pulumi up` would show it."""

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, type_: str, name: str) -> PlannedResource:
        matches = [r for r in self.of_type(type_) if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources of type {type_} named {name}")
        return matches[0]

    def known_urns(self) -> set[str]:
        """Every URN an existing stack may know these resources by: their own, their aliases, and the URNs their
        parents' aliases give them (the engine derives those for children)."""
        by_urn = {r.urn: r for r in self.resources}
        names: dict[str, set[str]] = {}

        def of(resource: PlannedResource) -> set[str]:
            if resource.urn not in names:
                own = engine_urn(resource.urn)
                found = {own, *resource.aliases}
                parent = by_urn.get(resource.parent or "")
                if parent is not None and parent.type != STACK_TYPE:
                    prefix = own.split("::", 3)[:2]
                    for parent_urn in of(parent) - {engine_urn(parent.urn)}:
                        parent_type = parent_urn.split("::")[2]
                        found.add("::".join([*prefix, f"{parent_type}${resource.type}", resource.name]))
                names[resource.urn] = found
            return names[resource.urn]

        return {urn for r in self.resources for urn in of(r)}

    def children(self, parent: PlannedResource) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Plain Kubernetes objects by file name, in Kubernetes form."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.resources:
            if not (r.custom and r.type.startswith("kubernetes:")) or r.type == HELM_RELEASE:
                continue
            group_version, kind = r.type.removeprefix("kubernetes:").split(":")
            api_version = group_version.removeprefix("core/")
            body = {k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}
            metadata = {"name": r.name, **body.pop("metadata", {})}
            obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
            prefix = f"{metadata['namespace']}." if "namespace" in metadata else ""
            out[f"{prefix}{kind.lower()}.{metadata['name']}.yaml"] = obj
        return out

    def helm_releases(self) -> dict[str, dict[str, Any]]:
        out = {}
        for r in self.of_type(HELM_RELEASE):
            name = r.inputs.get("name", r.name)
            out[f"{name}.yaml"] = {
                "release": name,
                "chart": r.inputs.get("chart"),
                "version": r.inputs.get("version"),
                "repository": (r.inputs.get("repositoryOpts") or {}).get("repo"),
                "namespace": r.inputs.get("namespace"),
                "values": r.inputs.get("values", {}),
            }
        return out

    def tree(self) -> str:
        lines: list[str] = []
        roots = [r for r in self.resources if r.parent is None]

        def walk(node: PlannedResource, indent: str) -> None:
            children = self.children(node)
            components = [c for c in children if not c.custom]
            counts = Counter(c.type for c in children if c.custom)
            entries: list[tuple[str, PlannedResource | None]] = [(f"{t} x{n}", None) for t, n in sorted(counts.items())]
            entries += [
                (f"{c.name} ({c.type}, {self._descendants(c)} resources)", c)
                for c in sorted(components, key=lambda c: (c.type, c.name))
            ]
            for i, (text, component) in enumerate(entries):
                last = i == len(entries) - 1
                lines.append(f"{indent}{'└─ ' if last else '├─ '}{text}")
                if component is not None:
                    walk(component, indent + ("   " if last else "│  "))

        for root in roots:
            lines.append(f"{root.name} ({root.type})")
            walk(root, "")
        custom = sum(r.custom for r in self.resources)
        lines.append(f"{custom} resources in {len(self.resources) - custom} components")
        return "\n".join(lines)

    def _descendants(self, node: PlannedResource) -> int:
        return sum(1 + self._descendants(c) if not c.custom else 1 for c in self.children(node))

    def write(self, directory: Path) -> None:
        if directory.exists():
            shutil.rmtree(directory)
        (directory / "manifests").mkdir(parents=True)
        (directory / "helm").mkdir()
        names = {r.urn: f"{r.type}::{r.name}" for r in self.resources}
        document = {
            "project": self.project,
            "stack": self.stack,
            # In URN order: the order of registration depends on when each Output resolved.
            "resources": [r.to_json(names) for r in sorted(self.resources, key=lambda r: r.urn)],
        }
        (directory / "resources.json").write_text(json.dumps(document, indent=2) + "\n")
        (directory / "outputs.json").write_text(json.dumps(self.outputs, indent=2) + "\n")
        for file_name, obj in self.manifests().items():
            (directory / "manifests" / file_name).write_text(dump_yaml(obj))
        for file_name, release in self.helm_releases().items():
            (directory / "helm" / file_name).write_text(dump_yaml(release))


def _redacted(value: Any) -> Any:
    """Every leaf replaced by "[secret]", keys and shape kept (a Secret's `stringData` stays a mapping)."""
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return REDACTED


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (configuration files in ConfigMaps) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(ch in value for ch in "\t\r") and not value.endswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _str)


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_ManifestDumper, sort_keys=False)


def _plain(value: Any) -> Any:
    """Secrets redacted and whole-number floats (how numbers cross the mock RPC) turned back into ints."""
    if rpc.is_rpc_secret(value):
        return _redacted(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class OfflineMocks(pulumi.runtime.Mocks):
    """Stand-ins for the provider: resources echo their inputs, and the OCI data sources the program reads
    answer with plausible values (availability domains, OKE node images, the Oracle Services Network)."""

    def __init__(self, region: str = DEFAULT_REGION, availability_domains: int = 3) -> None:
        self.region = region
        self.availability_domains = availability_domains
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        if args.typ == "oci:Core/vcn:Vcn":
            state |= {
                "defaultSecurityListId": f"ocid1.securitylist.offline..{args.name}-default",
                "defaultRouteTableId": f"ocid1.routetable.offline..{args.name}-default",
            }
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = f"{OFFLINE_PASSWORD_PREFIX}-{args.name}"
        if args.typ == "pulumi:pulumi:StackReference":
            # Another stack's outputs: a kubeconfig (secret, as an OKE stack exports it) under every name asked.
            state |= {"outputs": {"kubeconfig": _kubeconfig(args.inputs.get("name", args.name))}}
            state["secretOutputNames"] = ["kubeconfig"]
        if args.typ == "oci:Core/ipsecConnectionTunnelManagement:IpsecConnectionTunnelManagement":
            state["vpnIp"] = f"192.0.2.{10 + int(args.name.rsplit('-', 1)[-1])}"
        if args.typ == "oci:ContainerEngine/cluster:Cluster":
            # The API endpoint OKE gives a cluster in the API subnet (the documentation's example form).
            state["endpoints"] = [{"privateEndpoint": "10.0.0.2:6443", "kubernetes": "", "publicEndpoint": ""}]
        if args.typ == "oci:Core/publicIp:PublicIp":
            # A reserved public IP: an address of the documentation range, the same for the same name.
            state["ipAddress"] = f"203.0.113.{10 + sum(map(ord, args.name)) % 200}"
        kind = args.typ.rsplit(":", 1)[-1].lower()
        return f"ocid1.{kind}.offline..{args.name}", state

    def call(self, args: MockCallArgs) -> dict:
        self.calls.append(args)
        token = args.token.lower()
        if token == "oci:identity/getavailabilitydomains:getavailabilitydomains":
            code = self.region.upper()
            return {
                "availabilityDomains": [
                    {"name": f"OFFLINE:{code}-AD-{i}", "id": f"ocid1.availabilitydomain.offline..ad{i}"}
                    for i in range(1, self.availability_domains + 1)
                ]
            }
        if token == "oci:containerengine/getnodepooloption:getnodepooloption":
            return {"sources": _node_images(args.args.get("nodePoolK8sVersion", "v1.34.2"))}
        if token == "oci:core/getservices:getservices":
            return {
                "services": [
                    {
                        "id": "ocid1.service.offline..all-services",
                        "name": "All Offline Services In Oracle Services Network",
                        "cidrBlock": "all-offline-services-in-oracle-services-network",
                    }
                ]
            }
        if token == "oci:containerengine/getclusterkubeconfig:getclusterkubeconfig":
            return {"content": _kubeconfig(args.args.get("clusterId", "cluster"))}
        if token == "oci:core/getipsecconnectiontunnels:getipsecconnectiontunnels":
            ipsec = args.args.get("ipsecId", "ipsec")
            return {"ipSecConnectionTunnels": [{"id": f"{ipsec}-tunnel-{i}"} for i in (1, 2)]}
        if token == "oci:objectstorage/getnamespace:getnamespace":
            return {"namespace": "offlinenamespace"}
        raise NotImplementedError(f"the offline plan has no stand-in for data source {args.token}")


def _node_images(kubernetes_version: str) -> list[dict[str, str]]:
    """OKE node images as node-pool options list them: per architecture/GPU flavour, two builds, plus an
    older Kubernetes version, so image selection has something to choose between."""
    version = kubernetes_version.removeprefix("v")
    older = f"{version.rsplit('.', 1)[0]}.0" if not version.endswith(".0") else "1.30.1"
    sources = []
    for k8s, builds in ((version, ("2026.09.30-0", "2026.10.28-0")), (older, ("2026.10.28-0",))):
        for build in builds:
            for flavour in ("", "Gen2-GPU-", "aarch64-"):
                name = f"Oracle-Linux-8.10-{flavour}{build}-OKE-{k8s}-1130"
                sources.append({"sourceType": "IMAGE", "sourceName": name, "imageId": f"ocid1.image.offline..{name}"})
    return sources


def _kubeconfig(cluster_id: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "oke", "cluster": {"server": "https://offline.invalid:6443"}}],
            "users": [{"name": "oke", "user": {"token": f"{OFFLINE_KUBECONFIG_TOKEN}-{cluster_id}"}}],
            "contexts": [{"name": "oke", "context": {"cluster": "oke", "user": "oke"}}],
            "current-context": "oke",
        }
    )


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class RecordingMonitor(MockMonitor):
    """A mock monitor that also records each registration with its parent and secret-aware inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.planned: list[PlannedResource] = []
        self.log = logging.getLogger(f"pixelstream.tools.offline.{id(self)}")
        self.log.propagate = False
        self.warnings = _Collector()
        self.log.addHandler(self.warnings)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        inputs = {} if request.type == "pulumi:pulumi:Stack" else rpc.deserialize_properties(request.object)
        self._record(
            request,
            response.urn,
            inputs,
            custom=bool(request.custom),
            ignore_changes=list(request.ignoreChanges),
            aliases=[_alias_urn(alias, request, response.urn) for alias in request.aliases],
        )
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self._record(request, response.urn, rpc.deserialize_properties(request.properties), custom=True, read=True)
        return response

    def _record(self, request: Any, urn: str, inputs: dict[str, Any], **details: Any) -> None:
        self.planned.append(
            PlannedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent or None,
                inputs=_plain(inputs),
                dependencies=list(request.dependencies),
                provider=request.provider or None,
                **details,
            )
        )


def _alias_urn(alias: Any, request: Any, urn: str) -> str:
    """The URN an alias names, as the engine resolves a spec (name, type, parent) against the resource's own."""
    if alias.urn:
        return alias.urn
    spec = alias.spec
    prefix = urn.split("::", 2)[:2]  # urn:pulumi:<stack>, <project>
    kind, name = spec.type or request.type, spec.name or request.name
    parent = "" if spec.noParent else spec.parentUrn or request.parent
    parent_type = engine_urn(parent).split("::")[2] if parent else ""
    qualified = f"{parent_type}${kind}" if parent_type and parent_type != STACK_TYPE else kind
    return "::".join([*prefix, qualified, name])


def engine_urn(urn: str) -> str:
    """A URN as the Pulumi engine writes it: resources parented to the stack have no `pulumi:pulumi:Stack$`
    in their type (Pulumi's mock monitor adds it)."""
    return urn.replace(f"::{STACK_TYPE}$", "::", 1)


async def _resolve_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        plain = await output.future()
        resolved[key] = REDACTED if await output.is_secret() else _plain(plain)
    return resolved


@contextmanager
def offline_runtime(
    *,
    project: str = "project",
    stack: str = "stack",
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
) -> Iterator[RecordingMonitor]:
    """Pulumi's runtime set up for mocks on a fresh event loop (as Pulumi recommends per test), torn down after.

    `config` is keyed like the engine's (`project:key`), with structured values as JSON strings.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.reset_options(project=project, stack=stack, preview=False)
        pulumi.runtime.set_all_config(dict(config or {}), secret_keys or [])
        mocks = mocks or OfflineMocks(region=(config or {}).get("oci:region", DEFAULT_REGION))
        monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(
            mocks, project=project, stack=stack, preview=False, monitor=monitor, logger=monitor.log
        )
        _sync_await(wait_for_rpcs())  # the root stack's registration
        yield monitor
    finally:
        pulumi.runtime.set_all_config({}, [])
        loop.close()
        asyncio.set_event_loop(None)


def run_offline(program: Callable[[], Any], *, project: str = "project", stack: str = "stack", **runtime: Any) -> Plan:
    """Run `program` (a callable that declares resources) under mocks and return what it declared.

    Keyword arguments as for `offline_runtime`.
    """
    with offline_runtime(project=project, stack=stack, **runtime) as monitor:
        _sync_await(run_pulumi_func(program))
        root = pulumi.runtime.get_root_resource()
        outputs = _sync_await(_resolve_outputs(getattr(root, "outputs", {})))
        return Plan(
            project=project,
            stack=stack,
            resources=monitor.planned,
            outputs=outputs,
            warnings=monitor.warnings.messages,
        )


def plan_stack(
    stack: str,
    project_dir: Path = Path("."),
    stack_file: Path | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
) -> tuple[Plan, list[str]]:
    """Plan a stack of a Pulumi project offline. Returns the plan and notes about placeholders used."""
    project_file = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    project = project_file["name"]
    stack_dir = project_dir / project_file.get("stackConfigDir", ".")
    stack_file = stack_file or stack_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise pulumi.RunError(f"no stack config {stack_file}; stacks here: {_stack_names(stack_dir)}")
    settings = read_stack_config(stack_file, project)
    config = settings.values
    notes = []
    if not any(key.startswith(f"{project}:") for key in config):
        notes.append(f"{stack_file.name} sets no {project}: values; the plan shows every default")
    for key, placeholder in OFFLINE_PLACEHOLDERS.items():
        full_key = f"{project}:{key}"
        if full_key not in config:
            config[full_key] = placeholder
            notes.append(f"{full_key} is not set in {stack_file.name}; the offline plan uses {placeholder}")
    for value in settings.encrypted:
        notes.append(f"{value} is encrypted; the offline plan uses a placeholder and keeps it secret")
    main = project_dir / project_file.get("main", ".") / "__main__.py"
    previous = os.environ.get(STACK_FILE_ENV)
    os.environ[STACK_FILE_ENV] = str(stack_file)
    try:
        plan = run_offline(
            lambda: runpy.run_path(str(main), run_name="__main__"),
            project=project,
            stack=stack,
            config=config,
            secret_keys=settings.secret_keys,
            mocks=mocks,
        )
    finally:
        if previous is None:
            del os.environ[STACK_FILE_ENV]
        else:
            os.environ[STACK_FILE_ENV] = previous
    return plan, notes


def _stack_names(stack_dir: Path) -> str:
    names = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stack_dir.glob("Pulumi.*.yaml"))
    return ", ".join(names) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-file", type=Path, help="plan this stack config file instead")
    parser.add_argument("--project-dir", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=Path("build"), help="build directory (default: build)")
    options = parser.parse_args(argv)
    try:
        plan, notes = plan_stack(options.stack, options.project_dir, options.stack_file)
    except pulumi.RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    for warning in plan.warnings:
        print(f"warning: {warning}")
    print(plan.tree())
    releases = plan.helm_releases().values()
    if releases:
        print("Helm releases:")
        for r in sorted(releases, key=lambda r: r["release"]):
            print(f"  {r['release']:<24} {r['chart']} {r['version']} -> namespace {r['namespace']} ({r['repository']})")
    # What a stack is allowed to do in the tenancy deserves a reviewer's eye, statement by statement.
    for policy in plan.of_type(IAM_POLICY):
        print(f"IAM policy {policy.inputs.get('name', policy.name)}:")
        for statement in policy.inputs.get("statements", []):
            print(f"  {statement}")
    directory = options.out / options.stack
    plan.write(directory)
    print(
        f"wrote {directory}/resources.json ({len(plan.resources)} entries), outputs.json, "
        f"{len(plan.manifests())} manifests, {len(plan.helm_releases())} Helm releases"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
