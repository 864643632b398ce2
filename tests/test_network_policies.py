"""Pod to pod, as the plans' NetworkPolicies decide it (tests/netpol.py holds the API's semantics): every workload
namespace denies by default, each caller reaches exactly the ports it needs, and the GPU pods (streams, simulation
instances, jobs: the least trusted code) reach DNS, what their workload names and the internet, nothing else of the
cluster. Each boundary is asked both ways: the caller it is for gets through, every other pod does not, and what
the allowed caller can reach is measured over every pod and port of the plan."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from netpol import NAMESPACE_LABEL, Address, Pod, Policies
from test_addons import plan_with
from test_gpu_jobs import EXTERNAL_KAFKA, JOBS_ON_OKE

from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.pixel_streaming.streaming import STREAMER_PORT, UNREAL_REST_PORT

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ScaledJob")
# Addresses in the default subnets (constants.py): a TURN node, the API endpoint, a system pod's and a node's.
TURN_NODE, API_ENDPOINT, SYSTEM_POD, WORKER_NODE = "10.0.30.7", "10.0.0.5", "10.0.128.9", "10.0.64.3"
METADATA, INTERNET, PLAYER = "169.254.169.254", "151.101.1.1", "203.0.113.7"
LOAD_BALANCER = "10.0.2.17"
# Pods the platform's plans do not declare as workloads: the add-ons' and a stranger's.
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, "10.0.128.20")
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.0.128.21")
COREDNS = Pod("kube-system", {"k8s-app": "kube-dns"}, "10.0.128.22", {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")})
STRANGER = Pod("default", {"app": "anything"}, "10.0.128.23", {"http": (8080, "TCP")})


def _template(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    if manifest["kind"] == "ScaledJob":
        return manifest["spec"]["jobTargetRef"]["template"]
    return manifest["spec"]["template"]


# Ports the pods listen on without naming them in their spec: the streams' streamer port (Wilbur's, on every
# interface) and Unreal's REST API.
UNNAMED_PORTS = {"pixel/stream-main": {"streamer": (STREAMER_PORT, "TCP"), "rest-api": (UNREAL_REST_PORT, "TCP")}}


def workload_pods(plan: Plan) -> dict[str, Pod]:
    """One pod of each workload the plan declares (host-network pods left out: no policy governs them), keyed
    `<namespace>/<workload>`, with an address from the system pods' or the stream pods' subnet."""
    pods, numbers = {}, itertools.count(10)
    for manifest in plan.manifests().values():
        if manifest["kind"] not in WORKLOAD_KINDS:
            continue
        template = _template(manifest)
        if template["spec"].get("hostNetwork"):
            continue
        ports = {
            port["name"]: (port["containerPort"], port.get("protocol", "TCP"))
            for container in template["spec"]["containers"]
            for port in container.get("ports") or []
            if "name" in port
        }
        subnet = "10.0.192" if "nvidia.com/gpu" in str(template["spec"]) else "10.0.128"
        namespace = manifest["metadata"]["namespace"]
        key = f"{namespace}/{manifest['metadata']['name']}"
        ports |= UNNAMED_PORTS.get(key, {})
        pods[key] = Pod(namespace, template["metadata"]["labels"], f"{subnet}.{next(numbers)}", ports)
    return pods


def reachable(policies: Policies, source: Pod, targets: Mapping[str, Pod]) -> set[tuple[str, str]]:
    """Every (target, port name) `source` may open: what the allowed case can do, measured."""
    return {
        (name, port_name)
        for name, target in targets.items()
        for port_name, (port, protocol) in target.ports.items()
        if target is not source and policies.allows(source, target, protocol, port)
    }


def everyone(plan: Plan) -> dict[str, Pod]:
    others = {"ingress-nginx": INGRESS_CONTROLLER, "prometheus": PROMETHEUS, "coredns": COREDNS, "stranger": STRANGER}
    return {**workload_pods(plan), **others}


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_stack("prod", ROOT)[0]


@pytest.fixture(scope="module")
def sim() -> Plan:
    return plan_stack("sim", ROOT)[0]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_with(tmp_path_factory.mktemp("jobs"), "prod", jobs=JOBS_ON_OKE)


def stacks() -> Iterator[str]:
    yield from sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*"))


@pytest.mark.parametrize("stack", list(stacks()))
def test_every_workload_namespace_denies_what_no_policy_names(stack: str) -> None:
    plan = plan_stack(stack, ROOT)[0]
    workloads = {pod.namespace for pod in workload_pods(plan).values()}
    assert workloads, "the stack runs a workload"
    policies = [m for m in plan.manifests().values() if m["kind"] == "NetworkPolicy"]
    denying = {
        p["metadata"]["namespace"] for p in policies if p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    }
    assert workloads <= denying


def test_players_reach_the_session_service_and_only_it_reaches_the_streams(prod: Plan) -> None:
    pods = everyone(prod)
    policies = Policies(prod.manifests().values())
    session, stream = pods["pixel/session"], pods["pixel/stream-main"]
    assert policies.allows(INGRESS_CONTROLLER, session, "TCP", 8080)
    assert policies.allows(PROMETHEUS, session, "TCP", 9000)
    for caller in (STRANGER, stream, PROMETHEUS):
        assert not policies.allows(caller, session, "TCP", 8080), caller
    assert not policies.allows(INGRESS_CONTROLLER, session, "TCP", 9000)
    # The streams: signalling from the session service alone; the streamer port (8888) and Unreal's REST API
    # (8111, without the pod proxy) from nobody; media from anywhere, over UDP only.
    assert policies.allows(session, stream, "TCP", 8080)
    for caller in (INGRESS_CONTROLLER, PROMETHEUS, STRANGER):
        assert not policies.allows(caller, stream, "TCP", 8080), caller
    for caller in (session, INGRESS_CONTROLLER, STRANGER):
        assert not policies.allows(caller, stream, "TCP", 8888) and not policies.allows(caller, stream, "TCP", 8111)
    assert policies.allows(Address(PLAYER), stream, "UDP", 51234) and policies.allows(
        Address(TURN_NODE), stream, "UDP", 50000
    )
    assert not policies.allows(Address(PLAYER), stream, "TCP", 8080)
    # Measured: what each caller of the namespace reaches of every pod and port in the plan.
    assert reachable(policies, STRANGER, pods) == {("coredns", "dns"), ("coredns", "dns-tcp")}
    assert reachable(policies, INGRESS_CONTROLLER, pods) >= {("pixel/session", "http")}
    assert not {t for t in reachable(policies, INGRESS_CONTROLLER, pods) if t[0] == "pixel/stream-main"}


def test_a_stream_reaches_dns_the_relay_and_the_internet_and_nothing_else(prod: Plan) -> None:
    pods = everyone(prod)
    policies = Policies(prod.manifests().values())
    stream = pods["pixel/stream-main"]
    assert reachable(policies, stream, pods) == {("coredns", "dns"), ("coredns", "dns-tcp")}
    # The TURN servers: their listening port and relay range over UDP, nothing else of those addresses (on an
    # existing cluster they are every node's).
    for port in (3478, 49152, 50000, 65535):
        assert policies.allows(stream, Address(TURN_NODE), "UDP", port), port
    for protocol, port in (("UDP", 53), ("UDP", 8472), ("UDP", 4789), ("UDP", 49151), ("TCP", 3478), ("TCP", 22)):
        assert not policies.allows(stream, Address(TURN_NODE), protocol, port), (protocol, port)
    assert policies.allows(stream, Address(INTERNET), "TCP", 443) and policies.allows(stream, Address(PLAYER), "UDP", 9)
    for address in (METADATA, API_ENDPOINT, SYSTEM_POD, WORKER_NODE, "10.96.0.1"):
        for protocol, port in (("TCP", 80), ("TCP", 443), ("TCP", 6443), ("UDP", 53)):
            assert not policies.allows(stream, Address(address), protocol, port), (address, protocol, port)


def test_the_pod_proxy_alone_reaches_the_streams_rest_api(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"ingress": {"host": "play.example.com"}, "podProxy": {"enabled": True}})
    pods = everyone(plan)
    policies = Policies(plan.manifests().values())
    proxy, stream, session = pods["pixel/podproxy"], pods["pixel/stream-main"], pods["pixel/session"]
    assert policies.allows(INGRESS_CONTROLLER, proxy, "TCP", 8080)
    assert not policies.allows(STRANGER, proxy, "TCP", 8080)
    assert policies.allows(proxy, stream, "TCP", 8111)
    for caller in (session, INGRESS_CONTROLLER, STRANGER):
        assert not policies.allows(caller, stream, "TCP", 8111), caller
    assert not policies.allows(proxy, stream, "TCP", 8888), "the REST API only, not the streamer port"


def test_only_the_ingress_controller_reaches_the_fleet_and_instances_reach_no_private_network(sim: Plan) -> None:
    pods = everyone(sim)
    policies = Policies(sim.manifests().values())
    orchestrator = pods["sim/sim-orchestrator"]
    instances = [pod for name, pod in pods.items() if name.startswith("sim/sim-") and name != "sim/sim-orchestrator"]
    assert instances
    assert policies.allows(INGRESS_CONTROLLER, orchestrator, "TCP", 8080)
    for caller in (STRANGER, PROMETHEUS, *instances, pods["pixel/session"]):
        assert not policies.allows(caller, orchestrator, "TCP", 8080), caller
    for instance in instances:
        # The stream from its load balancer (which shows its own address): signalling and media, nothing else;
        # media from the TURN relay too; Isaac Sim's signalling (no credential) from no pod and no other address.
        assert policies.allows(Address(LOAD_BALANCER), instance, "TCP", 49100)
        assert policies.allows(Address(LOAD_BALANCER), instance, "UDP", 47998)
        assert policies.allows(Address(TURN_NODE), instance, "UDP", 47998)
        for caller in (STRANGER, INGRESS_CONTROLLER, pods["pixel/session"], Address(PLAYER), Address(TURN_NODE)):
            assert not policies.allows(caller, instance, "TCP", 49100), caller
        assert not policies.allows(Address(PLAYER), instance, "UDP", 47998), "not around the load balancer"
        for port in (8211, 8888, 22):
            assert not policies.allows(Address(LOAD_BALANCER), instance, "TCP", port), port
        assert reachable(policies, instance, pods) == {("coredns", "dns"), ("coredns", "dns-tcp")}
        assert policies.allows(instance, Address(INTERNET), "TCP", 443)
        assert policies.allows(instance, Address(TURN_NODE), "UDP", 50000), "media through the relay, as streams"
        assert not policies.allows(instance, Address(TURN_NODE), "UDP", 8472)
        for address in (METADATA, API_ENDPOINT, SYSTEM_POD, TURN_NODE):
            assert not policies.allows(instance, Address(address), "TCP", 443), address


def _broker() -> Pod:
    """A broker of Strimzi's Kafka (the operator makes it; its own NetworkPolicies govern who reaches it:
    STRIMZI_NETWORK_POLICY_GENERATION defaults to true, ClusterOperatorConfig.java at 1.2.0)."""
    labels = {"strimzi.io/cluster": "jobs", "strimzi.io/kind": "Kafka", "strimzi.io/broker-role": "true"}
    return Pod("render-jobs", labels, "10.0.128.40", {"tcp-tls": (9193, "TCP"), "tcp-scaler": (9094, "TCP")})


def test_a_job_reaches_kafkas_tls_listener_its_identity_and_the_internet(jobs: Plan) -> None:
    pods = everyone(jobs)
    policies = Policies(jobs.manifests().values())
    job = pods["render-jobs/render"]
    broker = _broker()
    assert policies.egress(job, broker, "TCP", 9193)
    assert not policies.egress(job, broker, "TCP", 9094), "KEDA's listener is KEDA's"
    assert policies.allows(job, Address(API_ENDPOINT), "TCP", 12250), "OKE's workload identity"
    assert not policies.allows(job, Address(API_ENDPOINT), "TCP", 6443)
    assert policies.allows(job, Address(INTERNET), "TCP", 443), "Object Storage, models"
    for address in (METADATA, SYSTEM_POD, WORKER_NODE, TURN_NODE):
        assert not policies.allows(job, Address(address), "TCP", 9193), address
    assert reachable(policies, job, pods) == {("coredns", "dns"), ("coredns", "dns-tcp")}
    for caller in (STRANGER, INGRESS_CONTROLLER, PROMETHEUS):
        assert not policies.allows(caller, job, "TCP", 8080), caller


def test_jobs_of_an_external_kafka_reach_its_port_wherever_it_is(tmp_path: Path) -> None:
    servers = "kafka-1.corp.example:9096,kafka-2.corp.example:9096"
    plan = plan_with(tmp_path, "prod", jobs={**JOBS_ON_OKE, "kafka": {**EXTERNAL_KAFKA, "bootstrapServers": servers}})
    policies = Policies(plan.manifests().values())
    job = workload_pods(plan)["render-jobs/render"]
    # Its brokers may be anywhere, the cluster's own networks included (across the VPN): their port is open
    # everywhere, and no other port of those networks.
    assert policies.allows(job, Address(SYSTEM_POD), "TCP", 9096)
    assert not policies.allows(job, Address(SYSTEM_POD), "TCP", 9193)
    assert not policies.allows(job, Address(METADATA), "TCP", 9096), "not even its port on the metadata service"


def test_the_evaluator_reads_policies_as_the_api_defines_them() -> None:
    """netpol.py on hand-written cases: an unselected pod is open; selection isolates; peers, named ports, ipBlock
    exceptions, namespace and pod selectors together, and an empty `from` (everyone)."""
    web = Pod("a", {"app": "web"}, "10.1.0.1", {"http": (8080, "TCP")})
    db = Pod("a", {"app": "db"}, "10.1.0.2", {"sql": (5432, "TCP")})
    other = Pod("b", {"app": "web"}, "10.2.0.1")

    def policy(selector: dict, rules: list, types: tuple = ("Ingress",), key: str = "ingress") -> dict:
        spec = {"podSelector": selector, "policyTypes": list(types), key: rules}
        return {"kind": "NetworkPolicy", "metadata": {"namespace": "a"}, "spec": spec}

    assert Policies([]).allows(other, db, "TCP", 5432)
    only_web = Policies(
        [
            policy(
                {"matchLabels": {"app": "db"}},
                [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "sql"}]}],
            )
        ]
    )
    assert only_web.allows(web, db, "TCP", 5432)
    assert not only_web.allows(other, db, "TCP", 5432), "a pod selector alone means the policy's namespace"
    assert not only_web.allows(web, db, "TCP", 5433) and not only_web.allows(web, db, "UDP", 5432)
    assert only_web.allows(db, web, "TCP", 8080), "web is selected by no policy"
    both = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "b"}},
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    }
    from_b = Policies([policy({}, [{"from": [both]}])])
    assert from_b.allows(other, db, "TCP", 1) and not from_b.allows(web, db, "TCP", 1)
    outside = Policies(
        [policy({}, [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}], ("Egress",), "egress")]
    )
    assert outside.allows(web, Address("8.8.8.8"), "TCP", 53) and not outside.allows(web, db, "TCP", 5432)
    assert Policies([policy({}, [{"ports": [{"protocol": "UDP"}]}])]).allows(Address("8.8.8.8"), db, "UDP", 9)
    assert not Policies([policy({}, [])]).allows(web, db, "TCP", 5432), "selected with no rule: nothing"
    # Without policyTypes: Ingress, and Egress as soon as the policy has egress rules.
    untyped = {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}]}]}
    implicit = Policies([{"kind": "NetworkPolicy", "metadata": {"namespace": "a"}, "spec": untyped}])
    assert implicit.egress(web, Address("8.8.8.8"), "UDP", 53) and not implicit.egress(
        web, Address("1.1.1.1"), "UDP", 53
    )
    assert not implicit.ingress(other, web, "TCP", 8080), "and Ingress, with no rule"


@pytest.mark.parametrize("stack", ["prod", "sim", "ai"])
def test_certificate_challenges_reach_their_solver_in_every_namespace_with_a_route(stack: str) -> None:
    """cert-manager answers Let's Encrypt's HTTP-01 challenge from a solver pod in the certificate's namespace,
    behind the ingress controller: the default deny must let the controller, and only it, reach it."""
    plan = plan_stack(stack, ROOT)[0]
    policies = Policies(plan.manifests().values())
    routed = {m["metadata"]["namespace"] for m in plan.manifests().values() if m["kind"] == "Ingress"}
    assert routed
    for namespace in routed:
        solver = Pod(namespace, {"acme.cert-manager.io/http01-solver": "true"}, "10.0.128.50", {"http": (8089, "TCP")})
        assert policies.allows(INGRESS_CONTROLLER, solver, "TCP", 8089), namespace
        assert not policies.allows(STRANGER, solver, "TCP", 8089), namespace
        assert not policies.allows(INGRESS_CONTROLLER, solver, "TCP", 8080), namespace
