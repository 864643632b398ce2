"""Every stack file a person can write gets a plan or one clear line.

Invalid stack files are generated: a wrong type for every key of the configuration (walked from the config
models, so a new key is covered the day it is added), the mistakes people make in YAML and in Pulumi's stack
format, and the values that are well-typed but wrong. Each goes through the plan's command line and must end
with exit 2, one line on stderr that names the exact key, and no traceback, in a few seconds. Valid but
unusual stacks must plan.
"""

from __future__ import annotations

import copy
import json
import time
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from conftest import ROOT, documentation
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from pixelstream.config import StackConfig
from pixelstream.tools.offline import main, plan_stack

STACKS = {
    name: yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    for name in ("dev", "prod", "onprem", "hybrid", "sim", "ai")
}
# A mapping of named entries (jobs.types.<name>): the walk descends into one entry, named like this.
ANY_KEY = "*"
# An override of a key that holds a mapping of free-form values (chart values) cannot have a wrong type inside.
FREE_FORM = ("values",)


def _alias(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return field.alias or name


def _leaves(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(camelCase key path, annotation) of every field of the config models, nested models included."""
    for name, field in model.model_fields.items():
        key = (*path, _alias(model, name))
        annotation = field.annotation
        yield key, annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, key)
        entry = typing.get_args(annotation)[-1] if typing.get_origin(annotation) is dict else None
        if isinstance(entry, type) and issubclass(entry, BaseModel):
            yield from _leaves(entry, (*key, ANY_KEY))


def _wrong_values(annotation: Any) -> list[tuple[Any, str]]:
    """Values of the wrong type for a field, each with the suffix its error path gets ("" or "[0]")."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _wrong_values(args[0])
    if annotation is bool:
        return [("yes", ""), (1, ""), ([True], "")]
    if annotation is int:
        return [(True, ""), (1.5, ""), ("7", ""), ([1], "")]
    if annotation is float:
        return [("many", ""), (True, ""), ({"a": 1}, "")]
    if annotation is str or typing.get_origin(annotation) is typing.Annotated:
        return [(7, ""), (True, ""), (["x"], "")]
    if origin is Literal:
        return [("not-a-choice", ""), (3, "")]
    if origin is list:
        return [("not-a-list", ""), ({"a": 1}, ""), *[([bad], "[0]") for bad, _ in _wrong_values(args[0])[:1]]]
    if origin is dict:
        return [("not-a-mapping", ""), ([1, 2], "")]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("a string", ""), ([1], "")]
    if origin is frozenset:
        return []
    raise AssertionError(f"no wrong values for {annotation}")


def _set(document: dict, path: tuple[str, ...], value: Any) -> dict:
    document = copy.deepcopy(document)
    config = document["config"]
    key = f"pixelstream:{path[0]}"
    if len(path) == 1:
        config[key] = value
        return document
    node = config.setdefault(key, {})
    for part in path[1:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict | None) else node
        if not isinstance(node, dict):
            break
    node[path[-1]] = value
    return document


def _named_entry(document: dict, path: tuple[str, ...]) -> tuple[str, ...]:
    """`path` with each ANY_KEY replaced by the first entry the stack file has at that place."""
    node: Any = document["config"].get(f"pixelstream:{path[0]}", {})
    resolved = [path[0]]
    for part in path[1:]:
        part = next(iter(node)) if part == ANY_KEY else part
        resolved.append(part)
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return tuple(resolved)


def type_cases() -> list[tuple[str, str, str, str]]:
    """(id, stack file text, error path, stack) for a wrong type at every key of the configuration. Keys inside a
    named entry (jobs.types.<name>) go into an entry of the onprem stack, which has one."""
    cases = []
    for index, (wildcard, annotation) in enumerate(_leaves(StackConfig)):
        if any(part in FREE_FORM for part in wildcard[:-1]):
            continue
        stack = "onprem" if ANY_KEY in wildcard else ("dev", "prod")[index % 2]
        path = _named_entry(STACKS[stack], wildcard)
        for bad, suffix in _wrong_values(annotation):
            dotted = ".".join(path) + suffix
            text = yaml.safe_dump(_set(STACKS[stack], path, bad))
            cases.append((f"{dotted}={bad!r}", text, f"pixelstream:{dotted}", stack))
    return cases


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _dev(**config: Any) -> str:
    document = copy.deepcopy(STACKS["dev"])
    document["config"].update({f"pixelstream:{k}" if ":" not in k else k: v for k, v in config.items()})
    return yaml.safe_dump(document)


def _dev_with(path: str, value: Any) -> str:
    return yaml.safe_dump(_set(STACKS["dev"], tuple(path.split(".")), value))


# A valid one-instance fleet on the dev stack's single A10 (its NGC key encrypted and its basic auth over HTTPS, as
# they must be; 24 GB, below Isaac Sim's GPU minimum, by choice).
FLEET = {
    "enabled": True,
    "acceptEula": True,
    "allowGpuBelowMinimum": True,
    "instances": 1,
    "ngcApiKey": {"secure": "v1:ngc"},
    "ingress": {"host": "sim.example.com"},
}

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)

# (id, stack file text, what the error line starts with after "error: ")
SEMANTIC_CASES: list[tuple[str, str, str]] = [
    ("whole file a list", "- config: {}\n", "{file}: is a YAML list"),
    ("whole file a string", "just words\n", "{file}: is a YAML str"),
    ("config a list", "config:\n  - pixelstream:nodePools\n", "{file}: config: is a list"),
    ("config a string", "config: nodePools\n", "{file}: config: is a str"),
    ("unclosed brace", "config:\n  pixelstream:nodePools: {gpu: {size: 1}\n", "{file}:3:1:"),
    ("tab indentation", "config:\n\tpixelstream:compartmentId: x\n", "{file}:2:1:"),
    ("bad indentation", "config:\n  pixelstream:cluster:\n    name: a\n   type: BASIC\n", "{file}:4:4:"),
    (
        "duplicate key",
        "config:\n  pixelstream:nodePools:\n    turn:\n      size: 1\n      size: 0\n",
        "{file}:5:7: duplicate key 'size' (first at line 4)",
    ),
    ("duplicate top key", "config: {}\nconfig: {}\n", "{file}:2:1: duplicate key 'config'"),
    ("mapping as a key", "config:\n  ? {a: 1}\n  : 2\n", "{file}:2:5: a key must be a plain value"),
    (
        "typo in config",
        "confg:\n  pixelstream:nodePools: {}\n",
        "{file}: unknown top-level key 'confg'; did you mean 'config'?",
    ),
    ("unknown top key", "settings: {}\n", "{file}: unknown top-level key 'settings'; allowed: config"),
    ("typo in namespace", _dev(**{"pixelstrem:nodePools": {"gpu": {"size": 0}}}), "{file}: config key pixelstrem:"),
    ("typo in provider namespace", _dev(**{"ocii:region": "us-ashburn-1"}), "{file}: config key ocii:region"),
    (
        "nested 5000 deep",
        "config:\n  pixelstream:addons:\n    monitoring:\n      values: " + "[" * 5000 + "]" * 5000 + "\n",
        "{file}:",
    ),
    (
        "alias bomb",
        "config:\n  pixelstream:addons:\n    monitoring:\n      values:\n"
        + "".join("        " + line + "\n" for line in ALIAS_BOMB.splitlines()),
        "{file}:",
    ),
    ("unknown top-level config key", _dev(clusterr={"name": "x"}), "pixelstream:clusterr: unknown key"),
    (
        "unknown nested key",
        _dev_with("cluster.endpoint.publicc", True),
        "pixelstream:cluster.endpoint.publicc: unknown key",
    ),
    (
        "size true",
        _dev_with("nodePools.turn.size", True),
        "pixelstream:nodePools.turn.size: true is not a whole number",
    ),
    (
        "size as float",
        _dev_with("nodePools.gpu.size", 1.0),
        "pixelstream:nodePools.gpu.size: 1.0 is not a whole number",
    ),
    (
        "pod proxy without a prefix",
        _dev(streaming={"podProxy": {"enabled": True, "pathPrefix": ""}}),
        "pixelstream:streaming.podProxy.pathPrefix:",
    ),
    (
        "namespace of monitoring",
        _dev(streaming={"namespace": "monitoring"}),
        "pixelstream:streaming.namespace: monitoring belongs",
    ),
    (
        "namespace kube-system",
        _dev(streaming={"namespace": "kube-system"}),
        "pixelstream:streaming.namespace: kube-system belongs",
    ),
    ("namespace default", _dev(streaming={"namespace": "default"}), "pixelstream:streaming.namespace: default belongs"),
    (
        "cpu above limit",
        _dev(streaming={"streamer": {"cpu": "16"}}),
        "pixelstream:streaming.streamer.cpu: 16 is above the limit",
    ),
    (
        "memory above limit",
        _dev(streaming={"streamer": {"memory": "32Gi"}}),
        "pixelstream:streaming.streamer.memory: 32Gi is above",
    ),
    (
        "cpu limit below request",
        _dev(streaming={"streamer": {"cpuLimit": "500m"}}),
        "pixelstream:streaming.streamer.cpu: 3750m is above",
    ),
    (
        "zero memory",
        _dev(streaming={"streamer": {"memory": "0"}}),
        "pixelstream:streaming.streamer.memory: 0 is not above zero",
    ),
    (
        "cpu nonsense",
        _dev(streaming={"streamer": {"cpu": "lots"}}),
        "pixelstream:streaming.streamer.cpu: lots is not a CPU quantity",
    ),
    (
        "replicas over int32",
        _dev(streaming={"autoscaling": {"maxReplicas": 2**31}}),
        "pixelstream:streaming.autoscaling.maxReplicas: 2147483648 is outside",
    ),
    (
        "min replicas negative",
        _dev(streaming={"autoscaling": {"minReplicas": -1}}),
        "pixelstream:streaming.autoscaling.minReplicas: -1 is outside 0-",
    ),
    (
        "min above max replicas",
        _dev(streaming={"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}),
        "pixelstream:streaming.autoscaling.minReplicas: 5 is above",
    ),
    (
        "relay over the kubelet",
        _dev(network={"relayPorts": {"min": 10000, "max": 10999}}),
        "pixelstream:network.relayPorts: 10000-10999 contains 10248",
    ),
    (
        "relay over coturn's exporter",
        _dev(network={"relayPorts": {"min": 9000, "max": 9999}}),
        "pixelstream:network.relayPorts: 9000-9999 contains 9100",
    ),
    (
        "relay over 3478",
        _dev(network={"relayPorts": {"min": 3000, "max": 4000}}),
        "pixelstream:network.relayPorts: 3000-4000 contains 3478",
    ),
    (
        "relay over NodePorts",
        _dev(network={"relayPorts": {"min": 31000, "max": 31001}}),
        "pixelstream:network.relayPorts: 31000-31001 contains 30000-32767",
    ),
    (
        "api subnet /31",
        _dev(network={"subnets": {"apiEndpoint": "10.0.0.0/31"}}),
        "pixelstream:network.subnets.apiEndpoint: 10.0.0.0/31 is smaller than /30",
    ),
    (
        "client cidr twice",
        _dev(network={"clientCidrs": ["192.0.2.0/24", "198.51.100.0/24", "192.0.2.0/24"]}),
        "pixelstream:network.clientCidrs[2]: 192.0.2.0/24 is listed twice (first at [0])",
    ),
    (
        "admin cidr twice",
        _dev(cluster={"endpoint": {"public": True, "allowedCidrs": ["198.51.100.0/24", "198.51.100.0/24"]}}),
        "pixelstream:cluster.endpoint.allowedCidrs[1]: 198.51.100.0/24 is listed twice",
    ),
    (
        "unknown kubernetes version",
        _dev(
            cluster={"kubernetesVersion": "v1.99.0", "endpoint": {"public": True, "allowedCidrs": ["198.51.100.0/24"]}}
        ),
        "pixelstream:cluster.kubernetesVersion: v1.99.0 is not a version OKE offers",
    ),
    (
        "cluster name with spaces",
        _dev(cluster={"name": "My Cluster/1 !", "endpoint": {"public": True, "allowedCidrs": ["198.51.100.0/24"]}}),
        "pixelstream:cluster.name: 'My Cluster/1 !' is not a cluster name",
    ),
    (
        "pool of 10^12 nodes",
        _dev_with("nodePools.default.size", 10**12),
        "pixelstream:nodePools.default.size: 1000000000000 is above 1000",
    ),
    (
        "autoscaled to zero",
        _dev_with("nodePools.gpu", {"size": 0, "minSize": 0, "maxSize": 0}),
        "pixelstream:nodePools.gpu.maxSize: 0 leaves the autoscaler no node",
    ),
    (
        "cluster too big",
        _dev(nodePools={"default": {"size": 1000}, "turn": {"size": 1000}, "gpu": {"size": 1}}),
        "pixelstream:nodePools: 2001 nodes at most",
    ),
    (
        "memoryGbs too large",
        _dev_with("nodePools.default.memoryGbs", 512),
        "pixelstream:nodePools.default.memoryGbs: memoryGbs 512",
    ),
    (
        "ocpus null on a flexible shape",
        _dev_with("nodePools.default.ocpus", None),
        "pixelstream:nodePools.default.ocpus:",
    ),
    (
        "bandwidth min too low",
        _dev(addons={"ingressNginx": {"minBandwidthMbps": 5}}),
        "pixelstream:addons.ingressNginx.minBandwidthMbps: 5 is outside 10-8000 Mbps",
    ),
    (
        "bandwidth min above max",
        _dev(addons={"ingressNginx": {"minBandwidthMbps": 500}}),
        "pixelstream:addons.ingressNginx.minBandwidthMbps: 500 is above",
    ),
    (
        "addon version not a version",
        _dev(addons={"gpuPlugin": {"owner": "okeAddon", "addonVersion": "not a version"}}),
        "pixelstream:addons.gpuPlugin.addonVersion: not a version",
    ),
    (
        "chart version a range",
        _dev(addons={"certManager": {"version": "^1.21"}}),
        "pixelstream:addons.certManager.version: ^1.21",
    ),
    (
        "simulation: more instances per GPU than the sharing allows",
        _dev(simulation={**FLEET, "instancesPerGpu": 2}),
        "pixelstream:simulation.instancesPerGpu: 2 is more instances per GPU than the GPU sharing allows",
    ),
    (
        "simulation: fewer instances per GPU than the shares",
        _dev(addons={"gpuPlugin": {"streamsPerGpu": 4}}, simulation=FLEET, streaming={"enabled": False}),
        "pixelstream:simulation.instancesPerGpu: 1 cannot be kept",
    ),
    (
        "simulation: shm above the memory limit",
        _dev(simulation={**FLEET, "shmSize": "32Gi"}),
        "pixelstream:simulation.shmSize: 32Gi is not below memoryLimit (16Gi)",
    ),
    (
        "simulation: no pull secret for an NGC image",
        _dev(simulation={"enabled": True, "acceptEula": True, "instances": 1}),
        "pixelstream:simulation.ngcApiKey: is required to pull nvcr.io/nvidia/isaac-sim:6.0.1",
    ),
    (
        "simulation: NGC key in plain text",
        _dev(simulation={**FLEET, "ngcApiKey": "nvapi-plain-text-key"}),
        "pixelstream:simulation.ngcApiKey: is plain text in the stack file",
    ),
    (
        "simulation: license not accepted",
        _dev(simulation={**FLEET, "acceptEula": False}),
        "pixelstream:simulation.acceptEula: false",
    ),
    (
        "simulation: more instances than GPUs",
        _dev(simulation={**FLEET, "instances": 2}),
        "pixelstream:simulation.instances: 2 do not fit the GPU pool, which holds at most 1: 1 node(s) of VM.GPU.A10.1",
    ),
    (
        "simulation: the streaming namespace",
        _dev(simulation={**FLEET, "namespace": "pixel"}),
        "pixelstream:simulation.namespace: pixel is streaming.namespace too",
    ),
    (
        "simulation: the streaming path",
        _dev(simulation=FLEET, streaming={"ingress": {"host": "sim.example.com", "pathPrefix": "/sim"}}),
        "pixelstream:simulation.ingress.pathPrefix: /sim is streaming.ingress.pathPrefix on the same host too",
    ),
    (
        "simulation: basic auth without a host",
        _dev(simulation={**FLEET, "ingress": {}}),
        "pixelstream:simulation.ingress.host: is not set, so the fleet's dashboard would take the basic-auth "
        "password over plain HTTP; set a host with addons.certManager on (TLS), or on a development stack accept "
        "plain HTTP with simulation.ingress.allowPlainHttp: true",
    ),
    (
        "simulation: basic auth on a host without a certificate",
        _dev(simulation=FLEET, addons={"certManager": {"enabled": False}}),
        "pixelstream:simulation.ingress.host: sim.example.com gets no certificate with addons.certManager off",
    ),
    (
        "simulation: plain HTTP opted into in production",
        _dev(environment="production", simulation={**FLEET, "ingress": {"allowPlainHttp": True}}),
        "pixelstream:simulation.ingress.allowPlainHttp: true is for development stacks only (environment: production)",
    ),
    (
        "simulation: plain HTTP opted into with TLS on",
        _dev(simulation={**FLEET, "ingress": {"host": "sim.example.com", "allowPlainHttp": True}}),
        "pixelstream:simulation.ingress.allowPlainHttp: true only applies without TLS; sim.example.com gets a "
        "certificate here",
    ),
    (
        "pod proxy: basic auth without a host",
        _dev(streaming={"podProxy": {"enabled": True}}),
        "pixelstream:streaming.ingress.host: is not set, so the pod proxy would take the basic-auth password over "
        "plain HTTP",
    ),
    (
        "simulation: shm not a quantity",
        _dev(simulation={**FLEET, "shmSize": "lots"}),
        "pixelstream:simulation.shmSize: lots is not a memory quantity",
    ),
    (
        "simulation: an image it does not run",
        _dev(simulation={**FLEET, "images": {"coturn": "docker.io/coturn/coturn:4.17.2-r0"}}),
        "pixelstream:simulation.images.coturn: is not an image of the workload; known: isaacsim, python",
    ),
    ("unknown region", _dev(**{"oci:region": "mars-north-1"}), "oci:region: mars-north-1 is not an OCI region"),
    (
        "region typo",
        _dev(**{"oci:region": "us-ashburn1"}),
        "oci:region: us-ashburn1 is not an OCI region; did you mean us-ashburn-1?",
    ),
    ("extra region malformed", _dev(extraRegions=["Mars North"]), "pixelstream:extraRegions[0]: Mars North"),
    (
        "on-premises network overlapping the VCN",
        _dev(network={"onPremises": {"cidrs": ["10.0.128.0/17"], "cpeIpAddress": "198.51.100.20"}}),
        "pixelstream:network.onPremises.cidrs[0]: 10.0.128.0/17 overlaps the VCN (10.0.0.0/16)",
    ),
    (
        "on-premises network overlapping the services",
        _dev(network={"onPremises": {"cidrs": ["10.96.16.0/20"], "cpeIpAddress": "198.51.100.20"}}),
        "pixelstream:network.onPremises.cidrs[0]: 10.96.16.0/20 overlaps cluster.servicesCidr (10.96.0.0/16)",
    ),
    (
        "on-premises networks overlapping each other",
        _dev(network={"onPremises": {"cidrs": ["192.168.0.0/16", "192.168.10.0/24"], "cpeIpAddress": "198.51.100.2"}}),
        "pixelstream:network.onPremises.cidrs[1]: 192.168.10.0/24 overlaps 192.168.0.0/16",
    ),
    (
        "existing cluster with OKE node pools",
        _dev(cluster={"target": "existing", "existing": {"kubeconfig": {"secure": "v1:k"}}}),
        "pixelstream:nodePools: are OKE node pools",
    ),
    (
        "more jobs than partitions",
        _dev(jobs={"enabled": True, "types": {"render": {"image": "r.example/render:1", "maxReplicas": 9}}}),
        "pixelstream:jobs.types.render.maxReplicas: 9 is above partitions (6)",
    ),
    (
        "values nested 70 deep",
        _dev(addons={"monitoring": {"values": {"a": _nested(70)}}}),
        "{file}:7:129: nested deeper than 64 levels",
    ),
]


def run_plan(text: str, directory: Path, capsys: pytest.CaptureFixture) -> tuple[int, list[str], str, float]:
    stack_file = directory / "Pulumi.fuzz.yaml"
    stack_file.write_text(text)
    start = time.monotonic()
    status = main(
        ["--stack", "fuzz", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(directory)]
    )
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    return status, captured.err.strip().splitlines(), captured.out + captured.err, elapsed


TYPE_CASES = type_cases()


def test_the_fuzz_covers_every_key_and_enough_files() -> None:
    covered = {case[2].split("[")[0] for case in TYPE_CASES}
    keys = {
        "pixelstream:" + ".".join(_named_entry(STACKS["onprem"], path) if ANY_KEY in path else path)
        for path, _ in _leaves(StackConfig)
        if not any(p in FREE_FORM for p in path[:-1])
    }
    assert "pixelstream:jobs.types.kart3d.display.mode" in keys, "named entries are walked too"
    assert keys <= covered, sorted(keys - covered)
    assert len(TYPE_CASES) + len(SEMANTIC_CASES) >= 200


@pytest.mark.parametrize(("case", "text", "path", "stack"), TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_a_wrong_type_anywhere_is_one_line_naming_the_key(case, text, path, stack, tmp_path, capsys) -> None:
    status, lines, everything, elapsed = run_plan(text, tmp_path, capsys)
    assert status == 2, everything[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), lines
    assert "Traceback" not in everything and elapsed < 5


# The stack that turns on the part of the config a key belongs to, so that its checks run.
STACK_OF = {"simulation": "sim", "aiWorkers": "ai", "jobs": "onprem", "network.onPremises": "hybrid"}
# Numbers whose range is wider than a Kubernetes int32: an ASN is 32-bit unsigned, bandwidth budgets are bytes.
WIDER_THAN_INT32 = {"network.onPremises.customerBgpAsn", "streaming.turn.capacityBytesPerSecond"}


def _stack_for(path: tuple[str, ...]) -> str:
    dotted = ".".join(path)
    if dotted.startswith("cluster.existing"):
        return "onprem"
    return next((stack for prefix, stack in STACK_OF.items() if dotted.startswith(prefix)), "prod")


def bound_cases() -> list[tuple[str, str, int, str]]:
    """(id, stack file text, value, key) for -1 and 2**31 at every integer key, in a stack where it is in use."""
    cases = []
    for wildcard, annotation in _leaves(StackConfig):
        if int not in (annotation, *typing.get_args(annotation)) or bool in typing.get_args(annotation):
            continue
        stack = _stack_for(wildcard)
        path = _named_entry(STACKS[stack], wildcard)
        dotted = ".".join(path)
        for value in (-1, 2**31):
            cases.append((f"{dotted}={value}", yaml.safe_dump(_set(STACKS[stack], path, value)), value, dotted))
    return cases


BOUND_CASES = bound_cases()


@pytest.mark.parametrize(("case", "text", "value", "key"), BOUND_CASES, ids=[c[0] for c in BOUND_CASES])
def test_a_number_out_of_range_is_one_line_or_a_wide_key(case, text, value, key, tmp_path, capsys) -> None:
    """Every integer key at -1 and just past int32: refused in one line (a negative count or a value Kubernetes,
    coturn or OCI cannot hold), planned only where the key's range is wider, never a traceback or a hang."""
    status, lines, everything, elapsed = run_plan(text, tmp_path, capsys)
    assert "Traceback" not in everything and elapsed < 10
    if status == 0:
        assert value > 0 and key in WIDER_THAN_INT32, f"{case} was planned"
        return
    # The line names the key or one it depends on (minSize without maxSize...), in the same part of the config.
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"error: pixelstream:{key.split('.')[0]}"), lines


def test_every_integer_key_is_tried_at_its_bounds() -> None:
    assert len(BOUND_CASES) >= 150
    assert {"simulation.instances=-1", "aiWorkers.replicas=2147483648", "jobs.types.kart3d.gpus=-1"} <= {
        case[0] for case in BOUND_CASES
    }


@pytest.mark.parametrize(("case", "text", "expected"), SEMANTIC_CASES, ids=[c[0] for c in SEMANTIC_CASES])
def test_a_mistake_is_one_line_naming_where_it_is(case, text, expected, tmp_path, capsys) -> None:
    status, lines, everything, elapsed = run_plan(text, tmp_path, capsys)
    assert status == 2, everything[-2000:]
    prefix = "error: " + expected.format(file=tmp_path / "Pulumi.fuzz.yaml")
    assert len(lines) == 1 and lines[0].startswith(prefix), (prefix, lines)
    assert "Traceback" not in everything and elapsed < 5


def test_structured_config_from_the_engine_is_bounded_too() -> None:
    """Pulumi hands the program JSON, not the file: the same depth bound holds there."""
    from pixelstream.config import ConfigError

    raw = {"compartmentId": "ocid1.compartment.oc1..aaaa", "addons": {"monitoring": {"values": {"a": _nested(500)}}}}
    with pytest.raises(ConfigError, match=r"^pixelstream:addons: is nested deeper than 64 levels$"):
        StackConfig.parse(raw)


DIGEST = "@sha256:" + "ab" * 32
REFERENCE_IMAGES = ("session", "signalling-ue5.7", "oauth2-proxy", "podproxy", "unreal")
OIDC = {
    "issuerUrl": "https://idcs-0123456789abcdef.identity.oraclecloud.com",
    "clientId": "pixelstream-players",
    "clientSecret": {"secure": "v1:oidc"},
}
ENDPOINT = {"public": True, "allowedCidrs": ["198.51.100.0/24"]}

# (id, the dev stack's pixelstream: keys replaced by these; None removes a key)
VALID: list[tuple[str, dict[str, Any]]] = [
    ("gpu pool of size 0", {"nodePools": {"gpu": {"size": 0}}}),
    (
        "every add-on off",
        {
            "addons": {
                to_camel(name): {"enabled": False}
                for name in StackConfig.model_fields["addons"].annotation.model_fields
            },
            "streaming": {"enabled": False},
        },
    ),
    (
        "images by digest",
        {"streaming": {"images": {name: f"registry.example/{name}{DIGEST}" for name in REFERENCE_IMAGES}}},
    ),
    ("Arm default pool", {"nodePools": {"default": {"shape": "VM.Standard.A1.Flex", "ocpus": 4, "memoryGbs": 24}}}),
    ("custom relay range", {"network": {"relayPorts": {"min": 40000, "max": 40999}}}),
    (
        "flannel with the relay opt-in",
        {"cluster": {"cni": "flannel", "endpoint": ENDPOINT}, "streaming": {"turn": {"allowRelayToAllPods": True}}},
    ),
    (
        "three availability domains",
        {"nodePools": {p: {"availabilityDomains": [1, 2, 3]} for p in ("default", "turn", "gpu")}},
    ),
    ("autoscaled GPU pool from zero", {"nodePools": {"gpu": {"size": 0, "minSize": 0, "maxSize": 4}}}),
    ("fault domains", {"nodePools": {"turn": {"faultDomains": ["FAULT-DOMAIN-1", "FAULT-DOMAIN-3"]}}}),
    (
        "time-sliced GPUs",
        {"addons": {"gpuPlugin": {"streamsPerGpu": 4}}, "streaming": {"streamer": {"gpuMode": "timeSliced"}}},
    ),
    ("streams packed by CPU", {"streaming": {"streamer": {"gpuMode": "cpuPacked"}}}),
    ("OKE's GPU add-on", {"addons": {"gpuPlugin": {"owner": "okeAddon", "addonVersion": "v0.15.0"}}}),
    ("network load balancer", {"addons": {"ingressNginx": {"loadBalancer": "network"}}}),
    ("players from two networks", {"network": {"clientCidrs": ["192.0.2.0/24", "203.0.113.0/24"]}}),
    (
        "API open to the world on purpose",
        {"cluster": {"endpoint": {"public": True, "allowedCidrs": ["0.0.0.0/0"], "allowWorldAccess": True}}},
    ),
    (
        "host, prefix and pod proxy",
        {"streaming": {"ingress": {"host": "play.example.com", "pathPrefix": "/pixel"}, "podProxy": {"enabled": True}}},
    ),
    (
        "BASIC cluster without the GPU plugin",
        {"cluster": {"type": "BASIC", "endpoint": ENDPOINT}, "addons": {"gpuPlugin": {"enabled": False}}},
    ),
    ("pinned node image", {"nodePools": {"turn": {"imageId": "ocid1.image.oc1.iad.aaaaexample"}}}),
    ("a region newer than the table", {"extraRegions": ["xx-newcity-1"], "oci:region": "xx-newcity-1"}),
    ("own namespace and realm", {"streaming": {"namespace": "games", "turn": {"realm": "games.example.com"}}}),
    (
        "players signing in with an identity domain, in production",
        {
            "environment": "production",
            "streaming": {
                "ingress": {"host": "play.example.com", "pathPrefix": "/pixel"},
                "players": {"auth": {"mode": "oidc", "oidc": {**OIDC, "allowedGroups": ["players", "testers"]}}},
            },
        },
    ),
    (
        "launch links from a portal's keys, Unreal 5.6, a long queue",
        {
            "streaming": {
                "unrealVersion": "5.6",
                "images": {"unreal": f"registry.example/game{DIGEST}"},
                "players": {
                    "auth": {
                        "mode": "signedLinks",
                        "signedLinks": {
                            "jwksUrl": "https://portal.example.com/.well-known/jwks.json",
                            "audience": "my-game",
                            "issuer": "https://portal.example.com",
                            "maxLifetimeSeconds": 60,
                        },
                    },
                    "queue": {"maxPlayers": 5000, "maxSessionMinutes": 90, "reconnectSeconds": 0},
                    "rateLimits": {"joinsPerMinute": 2, "signallingConnections": 1},
                },
                "streamer": {"allowConsoleCommands": True},
            }
        },
    ),
    ("older Kubernetes", {"cluster": {"kubernetesVersion": "v1.33.1", "endpoint": ENDPOINT}}),
    (
        "a large E5 pool",
        {"nodePools": {"default": {"shape": "VM.Standard.E5.Flex", "ocpus": 64, "memoryGbs": 512, "size": 3}}},
    ),
    ("a simulation instance on a whole GPU", {"simulation": FLEET}),
    (
        "a simulation fleet from a mirror, shared GPUs, own host",
        {
            "nodePools": {"gpu": {"shape": "BM.GPU.L40S.4", "size": 0, "minSize": 0, "maxSize": 2}},
            "addons": {"gpuPlugin": {"streamsPerGpu": 4}},
            "streaming": {"enabled": False},
            "simulation": {
                "enabled": True,
                "acceptEula": True,
                "instances": 32,
                "instancesPerGpu": 4,
                "allowGpuBelowMinimum": True,
                "images": {"isaacsim": f"registry.example/isaac-sim{DIGEST}"},
                "imagePullSecrets": ["mirror-login"],
                "ingress": {"host": "sim.example.com", "pathPrefix": "/fleet"},
            },
        },
    ),
    ("no keys at all", {"cluster": None, "nodePools": None, "oci:region": None}),
    (
        "existing cluster from another stack's output, streaming confined by pod ranges",
        {
            "cluster": {
                "target": "existing",
                "kubernetesVersion": "v1.30.4",
                "existing": {
                    "stackReference": "acme/gpu-cluster/onprem",
                    "nodeCidrs": ["192.168.50.0/24"],
                    "streamPodCidrs": ["10.244.128.0/20"],
                },
            },
            "nodePools": None,
        },
    ),
    (
        "site-to-site VPN, static routes, a service on-premises",
        {
            "network": {
                "onPremises": {
                    "cidrs": ["192.168.0.0/16", "172.31.0.0/16"],
                    "cpeIpAddress": "198.51.100.20",
                    "services": [{"name": "kafka", "port": 9092, "endPort": 9094}],
                }
            }
        },
    ),
    (
        "GPU jobs on OKE with an external Kafka",
        {
            "jobs": {
                "enabled": True,
                "kafka": {
                    "mode": "external",
                    "bootstrapServers": "kafka-1.corp.example:9093,kafka-2.example:9093",
                    "username": "render-jobs",
                    "password": {"secure": "v1:kafka-password"},
                },
                "types": {"render": {"image": f"registry.example/render{DIGEST}", "gpus": 2}},
            }
        },
    ),
]


def _valid_stack(changes: dict[str, Any]) -> str:
    document = copy.deepcopy(STACKS["dev"])
    for key, value in changes.items():
        full = key if ":" in key else f"pixelstream:{key}"
        if value is None:
            document["config"].pop(full, None)
        else:
            document["config"][full] = value
    return yaml.safe_dump(document)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "changes"), VALID, ids=[c[0] for c in VALID])
def test_an_unusual_but_valid_stack_plans(case, changes, tmp_path, capsys) -> None:
    status, lines, everything, _ = run_plan(_valid_stack(changes), tmp_path, capsys)
    assert status == 0, everything[-3000:]
    assert not [line for line in lines if line.startswith("error")]
    assert (tmp_path / "fuzz" / "resources.json").is_file()


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["dev", "prod", "onprem", "hybrid", "custom"])
def test_two_plans_of_a_stack_are_byte_identical(stack: str, tmp_path: Path) -> None:
    stack_file = None
    if stack == "custom":
        stack_file = tmp_path / "Pulumi.custom.yaml"
        custom = {"network": {"relayPorts": {"min": 40000, "max": 40999}}, "nodePools": {"gpu": {"size": 0}}}
        stack_file.write_text(_valid_stack(custom))
    trees = []
    for run in range(2):
        plan, _ = plan_stack(stack, ROOT, stack_file)
        plan.write(tmp_path / f"run{run}")
        trees.append(_tree(tmp_path / f"run{run}"))
    assert trees[0].keys() == trees[1].keys()
    assert [name for name in trees[0] if trees[0][name] != trees[1][name]] == []


def test_secure_values_stay_secret_wherever_they_sit(tmp_path: Path, capsys) -> None:
    document = copy.deepcopy(STACKS["dev"])
    document["config"]["pixelstream:compartmentId"] = {"secure": "v1:compartment"}
    document["config"]["pixelstream:addons"] = {
        "monitoring": {"values": {"grafana": {"adminUser": "ops", "smtp": {"password": {"secure": "v1:smtp"}}}}}
    }
    document["config"]["pixelstream:streaming"] = {"ingress": {"host": {"secure": "v1:host"}}}
    stack_file = tmp_path / "Pulumi.secret.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    status = main(
        ["--stack", "secret", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    )
    printed = capsys.readouterr().out
    assert status == 0
    for path in ("compartmentId", "addons.monitoring.values.grafana.smtp.password", "streaming.ingress.host"):
        assert f"note: pixelstream:{path} is encrypted" in printed
    written = "".join(p.read_text() for p in (tmp_path / "secret").rglob("*") if p.is_file())
    placeholders = ("offline-secret-value", "offline-secret.example.com", "ocid1.compartment.oc1..offlinesecret")
    assert not [p for p in placeholders if p in written or p in printed]
    # Secrecy is per input, as in Pulumi: the release holding the secret hides its values, the others do not.
    monitoring = yaml.safe_load((tmp_path / "secret" / "helm" / "kube-prometheus-stack.yaml").read_text())
    assert monitoring["values"]["grafana"]["adminUser"] == "[secret]"
    assert monitoring["chart"] == "kube-prometheus-stack" and monitoring["version"] == "88.5.3"
    metrics = yaml.safe_load((tmp_path / "secret" / "helm" / "metrics-server.yaml").read_text())
    assert "[secret]" not in json.dumps(metrics["values"])
    ingress = yaml.safe_load((tmp_path / "secret" / "manifests" / "pixel.ingress.pixelstream.yaml").read_text())
    assert ingress["spec"]["rules"][0]["host"] == "[secret]"
    outputs = yaml.safe_load((tmp_path / "secret" / "outputs.json").read_text())
    assert outputs["url"] == "[secret]" and outputs["streamingNamespace"] == "pixel"


def test_a_kubeconfig_and_vpn_keys_stay_secret(tmp_path: Path, capsys) -> None:
    """The onprem stack's kubeconfig and a hybrid stack's pre-shared keys, as `secure:` values: placeholders that
    work for the plan, and none of them in build/ or on the screen."""
    from pixelstream.stack_file import OFFLINE_KUBECONFIG, OFFLINE_SHARED_SECRET, SECRET_PLACEHOLDER

    hybrid = copy.deepcopy(STACKS["hybrid"])
    hybrid["config"]["pixelstream:network"]["onPremises"]["sharedSecrets"] = [{"secure": "v1:a"}, {"secure": "v1:b"}]
    printed = ""
    for name, document in (("onprem", STACKS["onprem"]), ("hybrid", hybrid)):
        stack_file = tmp_path / f"Pulumi.{name}.yaml"
        stack_file.write_text(yaml.safe_dump(document))
        status = main(
            ["--stack", name, "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
        )
        printed += capsys.readouterr().out
        assert status == 0, printed[-2000:]
    assert "note: pixelstream:cluster.existing.kubeconfig is encrypted" in printed
    assert "note: pixelstream:network.onPremises.sharedSecrets[1] is encrypted" in printed
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file() and "Pulumi." not in p.name)
    for placeholder in (OFFLINE_KUBECONFIG, "offline-secret.invalid", OFFLINE_SHARED_SECRET, SECRET_PLACEHOLDER):
        assert placeholder not in written and placeholder not in printed, placeholder
    resources = json.loads((tmp_path / "hybrid" / "resources.json").read_text())["resources"]
    tunnels = [r for r in resources if r["type"].endswith("IpsecConnectionTunnelManagement")]
    assert [t["inputs"]["sharedSecret"] for t in tunnels] == ["[secret]", "[secret]"]
    assert not [r for r in resources if r["name"].endswith("-secret") and "tunnel" in r["name"]], "given, not made"
    assert json.loads((tmp_path / "hybrid" / "outputs.json").read_text())["vpnSharedSecrets"] == "[secret]"


def test_make_check_uses_each_stacks_own_settings(tmp_path: Path, capsys) -> None:
    from pixelstream.tools.checks import main as checks

    stack_file = tmp_path / "Pulumi.relay.yaml"
    stack_file.write_text(_valid_stack({"network": {"relayPorts": {"min": 40000, "max": 40999}}}))
    plan, _ = plan_stack("relay", ROOT, stack_file)
    plan.write(tmp_path / "relay")
    assert checks(["policies", str(tmp_path / "relay"), "--stack-file", str(stack_file)]) == 0
    assert checks(["policies", str(tmp_path / "relay")]) == 1, "against the default range the custom one fails"
    rules = tmp_path / "relay" / "resources.json"
    rules.write_text(rules.read_text().replace('"min": 40000', '"min": 1024'))
    assert checks(["policies", str(tmp_path / "relay"), "--stack-file", str(stack_file)]) == 1
    assert "no-world-open-ingress" in capsys.readouterr().err


def test_the_reserved_add_on_namespaces_are_the_ones_the_add_ons_use() -> None:
    from pixelstream.addons.charts import ADDON_NAMESPACES

    plan, _ = plan_stack("dev", ROOT)
    declared = {r.name for r in plan.of_type("kubernetes:core/v1:Namespace")}
    assert declared == {*ADDON_NAMESPACES.values(), "pixel"}


def test_the_readme_lists_every_turn_node_host_port() -> None:
    from pixelstream.constants import TURN_NODE_HOST_PORTS

    readme = documentation()
    for what, (first, last) in TURN_NODE_HOST_PORTS.items():
        ports = str(first) if first == last else f"{first}-{last}"
        assert f"| {ports} | {what} |" in readme, what


# -- credentials: every key that holds one ---------------------------------------------------------------------

# A value a message could repeat: long enough that it cannot appear by chance, numeric as a VPN key may be.
LEAKY = "98765432101234567"


def _credential_stack(key: str, value: Any) -> str:
    """A stack file that sets credential `key` (dotted) to `value` and is otherwise valid."""
    documents = {
        "cluster.existing.kubeconfig": ("onprem", {}),
        "network.onPremises.sharedSecrets[0]": ("hybrid", {}),
        "simulation.ngcApiKey": ("dev", {"simulation": FLEET}),
        "aiWorkers.orchestrator.secret": (
            "ai",
            {
                "aiWorkers": {
                    **STACKS["ai"]["config"]["pixelstream:aiWorkers"],
                    "orchestrator": {"mode": "external", "address": "orch.example.net:8935"},
                }
            },
        ),
        "jobs.kafka.password": (
            "onprem",
            {
                "jobs": {
                    **STACKS["onprem"]["config"]["pixelstream:jobs"],
                    "kafka": {"mode": "external", "bootstrapServers": "kafka.corp.example:9093", "username": "jobs"},
                }
            },
        ),
        "streaming.players.auth.oidc.clientSecret": (
            "dev",
            {
                "streaming": {
                    "ingress": {"host": "play.example.com"},
                    "players": {
                        "auth": {"mode": "oidc", "oidc": {"issuerUrl": "https://idp.example", "clientId": "game"}}
                    },
                }
            },
        ),
    }
    stack, overrides = documents[key]
    document = copy.deepcopy(STACKS[stack])
    document["config"].update({f"pixelstream:{k}": v for k, v in overrides.items()})
    parts = tuple(key.replace("[0]", "").split("."))
    if key.endswith("[0]"):
        return yaml.safe_dump(_set(document, parts, [value, {"secure": "v1:second"}]))
    return yaml.safe_dump(_set(document, parts, value))


CREDENTIAL_KEYS = (
    "cluster.existing.kubeconfig",
    "network.onPremises.sharedSecrets[0]",
    "simulation.ngcApiKey",
    "aiWorkers.orchestrator.secret",
    "jobs.kafka.password",
    "streaming.players.auth.oidc.clientSecret",
)


def test_the_credential_cases_cover_every_credential_key() -> None:
    from pixelstream.config import CREDENTIALS

    assert {".".join(p).removesuffix(".*") for p in CREDENTIALS} == {k.replace("[0]", "") for k in CREDENTIAL_KEYS}


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
def test_a_credential_in_plain_text_is_refused_in_one_line_without_its_value(key, tmp_path, capsys) -> None:
    status, lines, everything, _ = run_plan(_credential_stack(key, LEAKY), tmp_path, capsys)
    assert status == 2 and lines == [
        f"error: pixelstream:{key}: is plain text in the stack file; store it encrypted: "
        f"pulumi config set --secret --path {key} <value>"
    ]
    assert LEAKY not in everything


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
@pytest.mark.parametrize("value", [int(LEAKY), {"key": LEAKY}, [LEAKY]], ids=["number", "mapping", "list"])
def test_a_credential_of_the_wrong_type_is_named_without_its_value(key, value, tmp_path, capsys) -> None:
    status, lines, everything, _ = run_plan(_credential_stack(key, value), tmp_path, capsys)
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"error: pixelstream:{key}"), lines
    assert LEAKY not in everything and "Traceback" not in everything


def test_a_credential_encrypted_in_the_stack_file_plans(tmp_path, capsys) -> None:
    for key in CREDENTIAL_KEYS:
        status, lines, _, _ = run_plan(_credential_stack(key, {"secure": "v1:ciphertext"}), tmp_path, capsys)
        assert status == 0, (key, lines)


@pytest.mark.parametrize(
    ("pools", "line"),
    [
        (
            {"gpu": {"cycling": {"maxUnavailable": 1}}},
            "nodePools.gpu.cycling.maxUnavailable: 1 would take GPU nodes away before their replacements run, "
            "cutting the sessions on them; use 0 (the new nodes surge in first)",
        ),
        (
            {"turn": {"size": 3, "cycling": {"maxSurge": 2}}},
            "nodePools.turn.cycling: replaces more than one TURN node at a time; players' relays move one node at "
            "a time",
        ),
        (
            {"default": {"cycling": {"maxSurge": 0}}},
            "nodePools.default.cycling.maxSurge: 0 with maxUnavailable 0 lets OKE replace no node; allow a surge of 1",
        ),
        (
            {"gpu": {"eviction": {"graceMinutes": 2}}},
            "nodePools.gpu.eviction.graceMinutes: 2 minutes is shorter than a stream's drain and termination (150 s: "
            "streaming.streamer.drainSeconds + 30); OKE would delete the node under sessions still draining",
        ),
        (
            {"default": {"eviction": {"graceMinutes": 90}}},
            "nodePools.default.eviction.graceMinutes: 90 is outside 0-60 min (OKE's limit)",
        ),
    ],
    ids=["gpu nodes away first", "turn two at a time", "no progress", "grace under the drain", "grace over 60"],
)
def test_node_cycling_that_would_cut_sessions_is_one_line(pools: dict, line: str, tmp_path: Path, capsys) -> None:
    status, lines, everything, _ = run_plan(_dev(nodePools=_merged_pools(pools)), tmp_path, capsys)
    assert status == 2 and lines == [f"error: pixelstream:{line}"], everything[-2000:]


def _merged_pools(pools: dict) -> dict:
    merged = copy.deepcopy(STACKS["dev"]["config"]["pixelstream:nodePools"])
    for pool, settings in pools.items():
        merged[pool] = {**merged.get(pool, {}), **settings}
    return merged
