"""Elastic GPU capacity in the plan: the Cluster Autoscaler add-on and its IAM, pod priorities, warm
placeholders and the image pre-pull."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT
from test_addons import plan_with
from test_workload import containers, manifest

from pixelstream.addons.cluster_autoscaler import PERMISSIONS
from pixelstream.constants import AUTOSCALER_EXPENDABLE_CUTOFF, GPU_RESOURCE, SHARED_GPU_RESOURCE
from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.kubernetes import cpu_millis, memory_bytes

ADDON = "oci:ContainerEngine/addon:Addon"
POLICY = "oci:Identity/policy:Policy"
CLUSTER_ID = "ocid1.cluster.offline..pixelstream-prod"
COMPARTMENT = "ocid1.compartment.oc1..offlineplan"


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_stack("prod", ROOT)[0]


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """Prod with a GPU slot held warm by a placeholder (prod keeps started streams instead)."""
    return plan_with(tmp_path_factory.mktemp("warm"), "prod", streaming={"capacity": {"warmStreams": 1}})


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def addon_settings(plan: Plan) -> dict[str, str]:
    addon = plan.named(ADDON, "cluster-autoscaler-addon").inputs
    assert addon["addonName"] == "ClusterAutoscaler" and addon["clusterId"] == CLUSTER_ID
    return {c["key"]: c["value"] for c in addon["configurations"]}


def test_autoscaler_add_on_manages_every_autoscaled_pool_with_the_stacks_timings(prod: Plan) -> None:
    settings = addon_settings(prod)
    assert settings["nodes"] == prod.outputs["autoscalerNodes"]["gpu"] == "1:5:ocid1.nodepool.offline..gpu"
    assert settings["authType"] == "workload"
    assert (settings["scanInterval"], settings["scaleDownDelayAfterAdd"], settings["scaleDownUnneededTime"]) == (
        "10s",
        "300s",
        "300s",
    )
    assert settings["maxNodeProvisionTime"] == "1500s", "Oracle's recommendation, not the add-on's 15m"
    assert settings["skipNodesWithLocalStorage"] == "false", "idle streams' scratch volume must not pin GPU nodes"
    assert settings["expendablePodsPriorityCutoff"] == str(AUTOSCALER_EXPENDABLE_CUTOFF)
    assert json.loads(settings["nodeSelectors"]) == {"app.pixel/pool": "default"}
    resources = json.loads(settings["cluster-autoscaler.ContainerResources"])
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    depends = prod.named(ADDON, "cluster-autoscaler-addon").dependencies
    policy = prod.named(POLICY, "cluster-autoscaler-policy")
    assert policy.urn in depends, "the add-on starts only once it may resize pools"


def test_several_autoscaled_pools_become_one_nodes_value(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "prod", nodePools={"default": {"minSize": 3, "maxSize": 6}})
    assert addon_settings(plan)["nodes"] == "3:6:ocid1.nodepool.offline..default, 1:5:ocid1.nodepool.offline..gpu"


def test_workload_identity_policy_is_scoped_to_this_clusters_autoscaler(prod: Plan) -> None:
    policy = prod.named(POLICY, "cluster-autoscaler-policy").inputs
    assert policy["compartmentId"] == COMPARTMENT and policy["name"] == "pixelstream-prod-cluster-autoscaler"
    statements = policy["statements"]
    assert len(statements) == len(PERMISSIONS)
    for permission, statement in zip(PERMISSIONS, statements, strict=True):
        assert statement.startswith(f"Allow any-user to {permission} in compartment id {COMPARTMENT} where ALL {{")
        for condition in (
            "request.principal.type = 'workload'",
            "request.principal.namespace = 'kube-system'",
            "request.principal.service_account = 'cluster-autoscaler'",
            f"request.principal.cluster_id = '{CLUSTER_ID}'",
        ):
            assert condition in statement, statement


def test_instance_principal_alternative_grants_the_worker_nodes_group(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path, "prod", addons={"clusterAutoscaler": {"authType": "instance", "dynamicGroup": "oke-workers"}}
    )
    assert addon_settings(plan)["authType"] == "instance"
    statements = plan.named(POLICY, "cluster-autoscaler-policy").inputs["statements"]
    assert statements == [
        f"Allow dynamic-group oke-workers to {p} in compartment id {COMPARTMENT}" for p in PERMISSIONS
    ]


def test_no_autoscaler_without_an_autoscaled_pool_or_when_switched_off(dev: Plan, tmp_path: Path) -> None:
    assert not [r for r in dev.of_type(ADDON) if r.inputs["addonName"] == "ClusterAutoscaler"]
    assert not dev.of_type(POLICY)
    off = plan_with(tmp_path, "prod", addons={"clusterAutoscaler": {"enabled": False}})
    assert not off.of_type(POLICY) and len(off.of_type(ADDON)) == 1, "only the parked GPU plugin add-on"


def pod_requests(spec: dict) -> dict[str, int]:
    """What a pod requests in all, as the scheduler adds it up."""
    total = {"cpu": 0, "memory": 0}
    for container in spec["containers"]:
        requests = container["resources"]["requests"]
        total["cpu"] += cpu_millis(requests["cpu"])
        total["memory"] += memory_bytes(requests["memory"])
        for gpu in (GPU_RESOURCE, SHARED_GPU_RESOURCE):
            if gpu in requests:
                total[gpu] = total.get(gpu, 0) + int(requests[gpu])
    return total


def test_placeholders_hold_exactly_a_streams_worth_where_streams_run(warm: Plan) -> None:
    prod = warm
    stream = manifest(prod, "deployment", "stream-main")["spec"]["template"]["spec"]
    warm = manifest(prod, "deployment", "warm-capacity")
    spec = warm["spec"]["template"]["spec"]
    assert warm["spec"]["replicas"] == 1
    held = pod_requests(spec)
    assert held[SHARED_GPU_RESOURCE] == 1, "prod time-slices: the placeholder holds one share"
    assert held["cpu"] >= pod_requests(stream)["cpu"] and held["memory"] >= pod_requests(stream)["memory"]
    assert held["memory"] - pod_requests(stream)["memory"] < 2**20, "rounded up to the next MiB at most"
    placeholder = spec["containers"][0]
    assert placeholder["resources"]["limits"] == placeholder["resources"]["requests"]
    assert placeholder["image"].startswith("registry.k8s.io/pause:")
    for key in ("affinity", "tolerations"):
        assert spec[key] == stream[key], key
    assert spec["terminationGracePeriodSeconds"] == 0
    assert warm["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_streams_preempt_placeholders_which_still_trigger_node_scale_up(warm: Plan, dev: Plan) -> None:
    prod = warm
    classes = {obj["metadata"]["name"]: obj for obj in prod.manifests().values() if obj["kind"] == "PriorityClass"}
    stream_class = manifest(prod, "deployment", "stream-main")["spec"]["template"]["spec"]["priorityClassName"]
    warm_class = manifest(prod, "deployment", "warm-capacity")["spec"]["template"]["spec"]["priorityClassName"]
    stream, warm = classes[stream_class], classes[warm_class]
    assert stream["value"] > warm["value"] >= AUTOSCALER_EXPENDABLE_CUTOFF
    assert stream["value"] <= 0, "streams preempt the placeholders, never a default-priority pod"
    assert stream["preemptionPolicy"] == "PreemptLowerPriority" and warm["preemptionPolicy"] == "Never"
    assert "deployment.warm-capacity.yaml" not in " ".join(dev.manifests()), "dev keeps no warm capacity"
    assert manifest(dev, "deployment", "stream-main")["spec"]["template"]["spec"]["priorityClassName"] == stream_class


def test_prepull_pulls_every_stream_image_on_gpu_nodes_without_starting_them(prod: Plan) -> None:
    stream = manifest(prod, "deployment", "stream-main")["spec"]["template"]["spec"]
    prepull = manifest(prod, "daemonset", "stream-image-prepull")["spec"]["template"]["spec"]
    pulls = prepull["initContainers"]
    assert {c["image"] for c in pulls} == {c["image"] for c in stream["containers"]}
    for container in pulls:
        assert container["command"] == ["sh", "-c", "true"], "the entrypoint would start the app"
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    users = {c["image"]: c["securityContext"]["runAsUser"] for c in pulls}
    assert users == {c["image"]: c["securityContext"]["runAsUser"] for c in stream["containers"]}
    assert [c["image"].split(":")[0] for c in prepull["containers"]] == ["registry.k8s.io/pause"]
    for key in ("affinity", "tolerations"):
        assert prepull[key] == stream[key], key
    assert prepull["automountServiceAccountToken"] is False


def test_prepull_can_be_switched_off(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"capacity": {"prePull": False, "warmStreams": 2}})
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in plan.manifests().values()}
    assert ("DaemonSet", "stream-image-prepull") not in kinds
    assert manifest(plan, "deployment", "warm-capacity")["spec"]["replicas"] == 2
    spec = manifest(plan, "deployment", "warm-capacity")["spec"]["template"]["spec"]
    assert pod_requests(spec)[GPU_RESOURCE] == 1, "dev streams take whole GPUs, and so do their placeholders"
    assert all(c["securityContext"]["runAsNonRoot"] for c in containers(spec))
