"""python -m pixelstream.tools.deploytime --stack <stack>: how long `pulumi up` of a stack takes from nothing, and
what it waits for, modelled on the plan's own dependency graph.

Every resource starts once everything it depends on (its inputs' sources, its explicit dependsOn, its provider)
has finished, and takes the time its type takes (DURATIONS, each figure with its source; `--set TYPE=SECONDS` or
`--set TYPE::NAME=SECONDS` overrides one), or an API call's when Pulumi does not wait for it (skipAwait). Pulumi
runs independent resources in parallel, so a resource finishes at the latest of its dependencies' finishes plus
its own time. The first ready stream is the earliest finish of a
build's stream Deployment (Pulumi waits for its rollout: a pod ready means the Unreal app connected); `pulumi up`
ends with the last resource. The critical path is followed back from there, and the unavoidable chain (network,
control plane, GPU node, image pull and Unreal start) is summed on its own: what no reordering could save.

    python -m pixelstream.tools.deploytime --stack prod
    python -m pixelstream.tools.deploytime --stack prod --json
    python -m pixelstream.tools.deploytime --stack prod --set oci:ContainerEngine/cluster:Cluster=900
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import STREAM_BUILD_DEPLOYMENTS
from .capacity.timings import Timings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "bootstrap:bastion-session"
"""With a private endpoint and a bastion: what goes through the API waits for the first `pulumi up` and a
session (pixelstream.tools.bastion --first-deploy)."""
_TIMINGS = Timings()
STREAMS = f"kubernetes:apps/v1:Deployment::{STREAM_BUILD_DEPLOYMENTS}"
"""Every build's stream Deployment, by key."""

# Seconds by resource type, and where the figure comes from.
DURATIONS: dict[str, tuple[int, str]] = {
    "oci:ContainerEngine/cluster:Cluster": (
        660,
        "OKE control plane: 7-15 minutes by public accounts (issue 24); the middle of that range",
    ),
    "oci:ContainerEngine/nodePool:NodePool": (
        _TIMINGS.node_provision_seconds + _TIMINGS.gpu_advertise_seconds,
        "a node pool's nodes launched, registered and (GPU) advertising their GPUs: the capacity simulator's "
        "nodeProvisionSeconds + gpuAdvertiseSeconds (pixelstream.tools.capacity.timings), inside the 5-8 minutes "
        "public accounts give",
    ),
    "oci:ContainerEngine/addon:Addon": (120, "estimate: an OKE add-on's work request (install and its pods ready)"),
    "kubernetes:helm.sh/v3:Release": (120, "estimate: a chart installed and its workloads ready (Helm's --wait)"),
    "kubernetes:apps/v1:Deployment": (45, "estimate: a small Deployment's image pulled and its pods ready"),
    "kubernetes:apps/v1:DaemonSet": (45, "estimate: as a Deployment, on every node it runs on"),
    "kubernetes:apps/v1:StatefulSet": (45, "estimate: as a Deployment"),
    "oci:Core/vcn:Vcn": (10, "estimate: an OCI networking create call"),
    "oci:Core/subnet:Subnet": (10, "estimate: an OCI networking create call"),
    "oci:Core/natGateway:NatGateway": (20, "estimate: an OCI gateway create call"),
    "oci:Core/internetGateway:InternetGateway": (10, "estimate: an OCI gateway create call"),
    "oci:Core/serviceGateway:ServiceGateway": (20, "estimate: an OCI gateway create call"),
    "oci:Identity/policy:Policy": (10, "estimate: an IAM create call"),
    "oci:Bastion/bastion:Bastion": (180, "estimate: a bastion's private endpoint made ACTIVE (no published figure)"),
    BOOTSTRAP: (
        90,
        "estimate: the first pulumi up ending, a SOCKS5 session on the bastion made ACTIVE and ssh's tunnel "
        "(pixelstream.tools.bastion), and the second pulumi up reading its state again",
    ),
}
DEFAULT_DURATION = (3, "estimate: one API call (OCI rules and route tables, Kubernetes objects without a rollout)")
# Resources whose own time is not their type's.
NAMED_DURATIONS: dict[str, tuple[int, str]] = {
    STREAMS: (
        _TIMINGS.image_pull_seconds + _TIMINGS.unreal_start_seconds,
        "a build's first stream: the Unreal image pulled and the app started, the capacity simulator's "
        "imagePullSeconds + unrealStartSeconds",
    ),
    r"kubernetes:helm.sh/v3:Release::kube-prometheus-stack": (240, "estimate: the largest chart, CRDs and all"),
}
# What the first stream cannot do without, in order: matched by key, summed as the unavoidable chain.
UNAVOIDABLE = (
    r"oci:Core/vcn:Vcn::.+",
    r"oci:Core/subnet:Subnet::.+-workers-subnet",
    r"oci:ContainerEngine/cluster:Cluster::.+",
    r"oci:ContainerEngine/nodePool:NodePool::gpu",
    BOOTSTRAP,
    STREAMS,
)
FIRST_STREAM = re.compile(STREAMS)
COMPONENT = re.compile(r"^pixelstream:index:")


@dataclass(frozen=True)
class Step:
    key: str
    start: int
    finish: int


@dataclass(frozen=True)
class Timeline:
    steps: dict[str, Step]
    waits_for: dict[str, str | None]
    """Each resource's last-finishing dependency: what it waited for."""

    def chain(self, key: str) -> list[Step]:
        path, at = [], key
        while at is not None:
            path.append(self.steps[at])
            at = self.waits_for[at]
        return path[::-1]


def duration(key: str, overrides: Mapping[str, int]) -> int:
    type_ = key.split("::", 1)[0]
    if key in overrides:
        return overrides[key]
    if type_ in overrides:
        return overrides[type_]
    for pattern, (seconds, _) in NAMED_DURATIONS.items():
        if re.fullmatch(pattern, key):
            return seconds
    return DURATIONS.get(type_, DEFAULT_DURATION)[0]


def schedule(graph: Mapping[str, Sequence[str]], overrides: Mapping[str, int] | None = None) -> Timeline:
    """Each resource's start and finish when it starts as soon as its dependencies have finished. `graph`: key ->
    the keys it depends on (component resources take no time of their own)."""
    steps: dict[str, Step] = {}
    waits_for: dict[str, str | None] = {}
    visiting: set[str] = set()

    def finish(key: str) -> int:
        if key in steps:
            return steps[key].finish
        if key in visiting:
            raise ValueError(f"a dependency cycle through {key}")
        visiting.add(key)
        deps = [d for d in graph.get(key, ()) if d in graph]
        last = max(deps, key=lambda d: (finish(d), d), default=None)
        start = finish(last) if last else 0
        own = 0 if COMPONENT.match(key) else duration(key, overrides or {})
        steps[key] = Step(key, start, start + own)
        waits_for[key] = last
        visiting.discard(key)
        return steps[key].finish

    for key in sorted(graph):
        finish(key)
    return Timeline(steps, waits_for)


@dataclass(frozen=True)
class PlanGraph:
    waits_for: dict[str, list[str]]
    """Key -> what it waits for (dependsOn, and its provider)."""
    unawaited: frozenset[str]
    """Kubernetes objects Pulumi does not wait for (`pulumi.com/skipAwait`): an API call's time."""

    def durations(self, overrides: Mapping[str, int]) -> dict[str, int]:
        return {key: DEFAULT_DURATION[0] for key in self.unawaited} | dict(overrides)


def plan_graph(stack: str, project: Path = ROOT, stack_file: Path | None = None) -> PlanGraph:
    """The stack's resources as `make plan` writes them (build/<stack>/resources.json, planned again here). With
    a bastion, the first deploy's bootstrap too: everything that goes through the API waits for BOOTSTRAP, which
    waits for everything else (the first `pulumi up`)."""
    from .bastion import second_step
    from .offline import plan_stack

    plan, _ = plan_stack(stack, project, stack_file)
    names = {r.urn: f"{r.type}::{r.name}" for r in plan.resources}
    graph: dict[str, list[str]] = {}
    unawaited = set()
    for r in plan.resources:
        deps = [names[d] for d in r.dependencies if d in names]
        if r.provider:
            provider = r.provider.rsplit("::", 1)[0]
            deps += [names[provider]] if provider in names else []
        graph[names[r.urn]] = sorted(set(deps))
        annotations = (r.inputs.get("metadata") or {}).get("annotations") or {}
        if annotations.get("pulumi.com/skipAwait") == "true":
            unawaited.add(names[r.urn])
    if plan.of_type("oci:Bastion/bastion:Bastion"):
        second = {names[urn] for urn in second_step(plan)}
        graph[BOOTSTRAP] = sorted(set(graph) - second)
        for key in second:
            graph[key] = sorted({*graph[key], BOOTSTRAP})
    return PlanGraph(graph, frozenset(unawaited))


def report(timeline: Timeline) -> dict[str, Any]:
    streams = sorted((s for k, s in timeline.steps.items() if FIRST_STREAM.fullmatch(k)), key=lambda s: s.finish)
    if not streams:
        raise ValueError("the stack streams nothing (no stream-<build> Deployment): no first stream to time")
    first = streams[0]
    last = max(timeline.steps.values(), key=lambda s: (s.finish, s.key))
    unavoidable = []
    for pattern in UNAVOIDABLE:
        found = sorted(k for k in timeline.steps if re.fullmatch(pattern, k))
        if found:
            unavoidable.append(timeline.steps[found[0]])
    return {
        "firstStreamSeconds": first.finish,
        "upSeconds": last.finish,
        "unavoidableSeconds": sum(s.finish - s.start for s in unavoidable),
        "chain": [{"resource": s.key, "start": s.start, "finish": s.finish} for s in timeline.chain(first.key)],
        "upChain": [{"resource": s.key, "start": s.start, "finish": s.finish} for s in timeline.chain(last.key)],
        "unavoidable": [s.key for s in unavoidable],
    }


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def table(stack: str, figures: Mapping[str, Any]) -> str:
    lines = [
        f"stack {stack}: first ready stream {_clock(figures['firstStreamSeconds'])}, pulumi up "
        f"{_clock(figures['upSeconds'])}, the unavoidable chain alone {_clock(figures['unavoidableSeconds'])} "
        "(minutes:seconds)",
        "critical path to the first stream:",
        f"  {'start':>6} {'finish':>7}  resource",
    ]
    for step in figures["chain"]:
        if step["finish"] > step["start"]:
            lines.append(f"  {_clock(step['start']):>6} {_clock(step['finish']):>7}  {step['resource']}")
    return "\n".join(lines) + "\n"


def gantt(stack: str, timeline: Timeline, figures: Mapping[str, Any], path: Path) -> None:
    """The resources that take half a minute or more, as bars from start to finish; the critical path to the
    first stream in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    critical = {step["resource"] for step in figures["chain"]}
    shown = sorted(
        (s for s in timeline.steps.values() if s.finish - s.start >= 30 or (s.key in critical and s.finish > s.start)),
        key=lambda s: (s.start, s.finish, s.key),
    )
    figure, ax = plt.subplots(figsize=(11, 0.28 * len(shown) + 1.4))
    for row, step in enumerate(shown):
        color = "tab:red" if step.key in critical else "tab:gray"
        ax.barh(row, (step.finish - step.start) / 60, left=step.start / 60, color=color, height=0.6)
    ax.set_yticks(range(len(shown)), [s.key.replace("kubernetes:", "k8s:") for s in shown], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(figures["firstStreamSeconds"] / 60, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("minutes from `pulumi up`")
    ax.set_title(
        f"{stack}: first ready stream at {_clock(figures['firstStreamSeconds'])}, up at "
        f"{_clock(figures['upSeconds'])} (red: the critical path to the first stream)",
        loc="left",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def _overrides(assignments: Sequence[str]) -> dict[str, int]:
    overrides = {}
    for assignment in assignments:
        key, _, value = assignment.rpartition("=")
        if not key or not value.isdigit():
            raise ValueError(f"--set {assignment}: expected TYPE=SECONDS or TYPE::NAME=SECONDS")
        overrides[key] = int(value)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.deploytime", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="prod", help="stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=SECONDS", help="override a duration")
    parser.add_argument("--out", type=Path, help="where deploytime.png goes (default build/<stack>)")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    options = parser.parse_args(argv)
    try:
        graph = plan_graph(options.stack, options.project_dir)
        timeline = schedule(graph.waits_for, graph.durations(_overrides(options.set)))
        figures = report(timeline)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = options.out or options.project_dir / "build" / options.stack
    out.mkdir(parents=True, exist_ok=True)
    gantt(options.stack, timeline, figures, out / "deploytime.png")
    print(
        json.dumps(figures, indent=2) if options.json else table(options.stack, figures),
        end="\n" if options.json else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
