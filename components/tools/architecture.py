"""python -m pixelstream.tools.architecture --stack prod: the architecture picture, drawn from a stack's offline
plan with the `diagrams` package (Graphviz, OCI and Kubernetes icons) into docs/architecture-<stack>.png.

What it shows comes from the plan, not from a drawing kept by hand: the VCN's subnets with their CIDRs, the
gateways, the API endpoint and the bastion when the stack has one, the node pools with their shapes and sizes, the
service load balancers, and the workloads on each pool (the session service, TURN, the builds' streams, the
add-ons' releases). The edges are the flows the security rules open, with their ports. `--check` fails when the
committed picture differs from what the plan gives today.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..constants import KUBE_API_PORT, TURN_LISTENING_PORT
from .offline import Plan, plan_stack

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "oci:Core/subnet:Subnet"
POOL = "oci:ContainerEngine/nodePool:NodePool"


@dataclass(frozen=True)
class Picture:
    """What the picture shows, read from the plan."""

    stack: str
    vcn: str
    """The VCN's CIDR."""
    subnets: dict[str, str]
    """Role key (the subnet's name without the stack prefix) -> CIDR."""
    pools: dict[str, str]
    """Pool -> "shape, n nodes" or "shape, min-max nodes"."""
    workloads: dict[str, list[str]]
    """Pool -> the workloads that run on it."""
    bastion: bool
    relay: str


def picture(plan: Plan) -> Picture:
    prefix = f"pixelstream-{plan.stack}-"
    subnets = {r.name.removeprefix(prefix).removesuffix("-subnet"): r.inputs["cidrBlock"] for r in plan.of_type(SUBNET)}
    pools = {}
    for r in plan.of_type(POOL):
        size = (r.inputs.get("nodeConfigDetails") or {}).get("size")
        pools[r.name] = f"{r.inputs['nodeShape']}, {size:g} node{'s' if size != 1 else ''}"
    names = {r.type: [] for r in plan.resources}
    for r in plan.resources:
        names[r.type].append(r.name)
    releases = names.get("kubernetes:helm.sh/v3:Release", [])
    deployments = names.get("kubernetes:apps/v1:Deployment", [])
    workloads = {
        "default": sorted(
            n for n in [*releases, *deployments] if not n.startswith(("stream-", "turn", "nvidia", "dcgm"))
        ),
        "turn": sorted(n for n in names.get("kubernetes:apps/v1:DaemonSet", []) if n.startswith("turn")),
        "gpu": sorted(n for n in [*deployments, *releases] if n.startswith(("stream-", "nvidia", "dcgm"))),
    }
    bastion = bool(plan.of_type("oci:Bastion/bastion:Bastion"))
    [vcn] = plan.of_type("oci:Core/vcn:Vcn")
    return Picture(plan.stack, vcn.inputs["cidrBlocks"][0], subnets, pools, workloads, bastion, _relay(plan))


def _relay(plan: Plan) -> str:
    ports = plan.outputs.get("relayPorts") or {}
    return f"{ports.get('min', '?')}-{ports.get('max', '?')}"


def draw(pic: Picture, out: Path) -> None:
    """The picture as a PNG at `out` (Graphviz's dot through `diagrams`)."""
    from diagrams import Cluster, Diagram, Edge
    from diagrams.generic.network import Subnet
    from diagrams.k8s.compute import Deploy
    from diagrams.oci.compute import OKE, InstancePools
    from diagrams.oci.network import InternetGateway, LoadBalancer, ServiceGateway
    from diagrams.oci.security import IDAccess
    from diagrams.onprem.client import Users

    attributes = {"fontsize": "12", "pad": "0.3", "splines": "spline", "nodesep": "0.5", "ranksep": "0.9"}
    with Diagram(
        f"{pic.stack}: drawn from the plan",
        filename=str(out.with_suffix("")),
        outformat="png",
        show=False,
        graph_attr=attributes,
        node_attr={"fontsize": "10"},
    ):
        players = Users("players")
        admins = Users("administrators,\nCI")
        with Cluster(f"VCN {pic.vcn}"):
            gateway = InternetGateway("internet gateway")
            services = ServiceGateway("NAT + service\ngateways")
            with Cluster(f"lb {pic.subnets.get('lb', '')} (public)"):
                balancer = LoadBalancer("ingress load\nbalancer")
            with Cluster(f"api {pic.subnets.get('api', '')}"):
                api = OKE("Kubernetes API\n(private endpoint)")
            pools = {}
            for pool, subnet in (("turn", "turn"), ("default", "workers"), ("gpu", "workers")):
                with Cluster(f"{pool} pool: {pic.pools.get(pool, '')}\n{subnet} {pic.subnets.get(subnet, '')}"):
                    pools[pool] = InstancePools(pool)
                    for workload in pic.workloads.get(pool, [])[:6]:
                        Deploy(workload) - Edge(style="invis") - pools[pool]
            if "streams" in pic.subnets:
                streams = Subnet(f"stream pods\n{pic.subnets['streams']}")
                pools["gpu"] >> Edge(style="dotted") >> streams
                pools["turn"] >> Edge(label=f"relayed media, UDP {pic.relay}", color="darkgreen") >> streams
            if pic.bastion:
                with Cluster(f"bastion {pic.subnets.get('bastion', '')}"):
                    bastion = IDAccess("OCI bastion\n(SOCKS5 sessions)")
                admins >> Edge(label="sessions from\nclientCidrs") >> bastion
                bastion >> Edge(label=f"TCP {KUBE_API_PORT} only") >> api
            else:
                admins >> Edge(label=f"TCP {KUBE_API_PORT}\n(allowedCidrs)") >> api
        players >> Edge(label="HTTPS 443") >> gateway >> balancer >> Edge(label="NodePorts") >> pools["default"]
        players >> Edge(label=f"TURN {TURN_LISTENING_PORT}, relay UDP", color="darkgreen") >> pools["turn"]
        pools["gpu"] >> Edge(style="dashed", label="image pulls") >> services


def render(stack: str, project: Path = ROOT) -> bytes:
    plan, _ = plan_stack(stack, project)
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "architecture.png"
        draw(picture(plan), out)
        return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelstream.tools.architecture", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--check", action="store_true", help="fail if the committed picture differs")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    options = parser.parse_args(argv)
    out = options.project_dir / "docs" / f"architecture-{options.stack}.png"
    image = render(options.stack, options.project_dir)
    if options.check:
        if not out.exists() or out.read_bytes() != image:
            print(f"{out} differs from the {options.stack} plan: run python -m pixelstream.tools.architecture")
            return 1
        print(f"{out} matches the {options.stack} plan")
        return 0
    out.write_bytes(image)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
