"""NodePool: image choice, register-time taints, labels, placement, sizing and autoscaling."""

from __future__ import annotations

import shlex
import subprocess
from types import SimpleNamespace

import pulumi
import pytest
from conftest import COMPARTMENT, decode_user_data

from pixelstream import GPU_TAINT, TURN_TAINT, NodePool, NodePoolArgs, Taint, select_node_image, taint_cloud_init
from pixelstream.oci.node_pool import NodeImageError
from pixelstream.tools.offline import OfflineMocks, Plan, run_offline

NODE_POOL = "oci:ContainerEngine/nodePool:NodePool"


def pool_args(**overrides) -> NodePoolArgs:
    args = {
        "cluster_id": "cluster",
        "compartment_id": COMPARTMENT,
        "kubernetes_version": "v1.34.2",
        "subnet_id": "workers-subnet",
        "nsg_ids": ["workers-nsg"],
        "availability_domains": ["AD-1"],
        "shape": "VM.Standard.E4.Flex",
        "ocpus": 2,
        "memory_gbs": 16,
    }
    return NodePoolArgs(**{**args, **overrides})


def plan_pool(name: str = "pool", mocks: OfflineMocks | None = None, **overrides) -> Plan:
    return run_offline(lambda: NodePool(name, pool_args(**overrides)), mocks=mocks)


def image(name: str) -> dict[str, str]:
    return {"source_name": name, "image_id": f"id-{name}"}


SOURCES = [
    image("Oracle-Linux-8.10-2026.09.30-0-OKE-1.34.2-1100"),
    image("Oracle-Linux-8.10-2026.10.28-0-OKE-1.34.2-1130"),
    image("Oracle-Linux-8.10-2026.11.15-0-OKE-1.33.1-1130"),
    image("Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130"),
    image("Oracle-Linux-8.10-Gen2-GPU-2026.08.01-0-OKE-1.34.2-1090"),
    image("Oracle-Linux-8.10-aarch64-2026.10.28-0-OKE-1.34.2-1130"),
    image("Oracle-Linux-7.9-2026.11.20-0-OKE-1.34.2-1130"),
    image("Canonical-Ubuntu-22.04-2026.10.01-0"),
]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("VM.Standard.E4.Flex", "Oracle-Linux-8.10-2026.10.28-0-OKE-1.34.2-1130"),
        ("VM.GPU.A10.1", "Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130"),
        ("BM.GPU.L40S.4", "Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130"),
        ("VM.Standard.A1.Flex", "Oracle-Linux-8.10-aarch64-2026.10.28-0-OKE-1.34.2-1130"),
    ],
)
def test_newest_image_of_the_version_for_the_shape(shape: str, expected: str) -> None:
    assert select_node_image(SOURCES, "v1.34.2", shape) == (f"id-{expected}", expected)


def test_image_sources_may_arrive_as_objects() -> None:
    objects = [SimpleNamespace(**s) for s in SOURCES]
    assert (
        select_node_image(objects, "v1.33.1", "VM.Standard.E4.Flex")[1]
        == "Oracle-Linux-8.10-2026.11.15-0-OKE-1.33.1-1130"
    )


def test_no_image_for_the_version_is_a_clear_error() -> None:
    with pytest.raises(
        NodeImageError, match=r"no OKE GPU x86_64 node image for Kubernetes v1\.33\.1 \(VM\.GPU\.A10\.1\)"
    ):
        select_node_image(SOURCES, "v1.33.1", "VM.GPU.A10.1")


def test_gpu_pool_gets_the_gpu_image_from_node_pool_options() -> None:
    mocks = OfflineMocks()
    plan = plan_pool("gpu", mocks, shape="VM.GPU.A10.1", ocpus=None, memory_gbs=None)
    inputs = plan.named(NODE_POOL, "gpu").inputs
    assert inputs["nodeSourceDetails"] == {
        "sourceType": "IMAGE",
        "imageId": "ocid1.image.offline..Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130",
        "bootVolumeSizeInGbs": "100",
    }
    assert "nodeShapeConfig" not in inputs
    options = [c.args for c in mocks.calls if c.token.endswith("getNodePoolOption")]
    assert options == [{"nodePoolOptionId": "all", "compartmentId": COMPARTMENT, "nodePoolK8sVersion": "v1.34.2"}]


def test_pinned_image_skips_the_lookup() -> None:
    mocks = OfflineMocks()
    plan = plan_pool(mocks=mocks, image_id="ocid1.image.oc1..pinned")
    assert plan.named(NODE_POOL, "pool").inputs["nodeSourceDetails"]["imageId"] == "ocid1.image.oc1..pinned"
    assert not [c for c in mocks.calls if c.token.endswith("getNodePoolOption")]


def test_flex_shape_sizing_and_placement() -> None:
    inputs = (
        plan_pool(
            availability_domains=["AD-1", "AD-2", "AD-3"], fault_domains=["FAULT-DOMAIN-1", "FAULT-DOMAIN-2"], size=3
        )
        .named(NODE_POOL, "pool")
        .inputs
    )
    assert inputs["nodeShape"] == "VM.Standard.E4.Flex"
    assert inputs["nodeShapeConfig"] == {"ocpus": 2, "memoryInGbs": 16}
    details = inputs["nodeConfigDetails"]
    assert details["size"] == 3
    assert details["nsgIds"] == ["workers-nsg"]
    assert details["placementConfigs"] == [
        {"availabilityDomain": ad, "subnetId": "workers-subnet", "faultDomains": ["FAULT-DOMAIN-1", "FAULT-DOMAIN-2"]}
        for ad in ("AD-1", "AD-2", "AD-3")
    ]
    assert details["nodePoolPodNetworkOptionDetails"] == {"cniType": "FLANNEL_OVERLAY"}


def test_vcn_native_pods_get_their_subnet_and_nsg() -> None:
    inputs = plan_pool(cni="vcnNative", pod_nsg_ids=["workers-nsg"]).named(NODE_POOL, "pool").inputs
    assert inputs["nodeConfigDetails"]["nodePoolPodNetworkOptionDetails"] == {
        "cniType": "OCI_VCN_IP_NATIVE",
        "podSubnetIds": ["workers-subnet"],
        "podNsgIds": ["workers-nsg"],
        "maxPodsPerNode": 31,
    }


def labels_of(plan: Plan, name: str) -> dict[str, str]:
    return {label["key"]: label["value"] for label in plan.named(NODE_POOL, name).inputs["initialNodeLabels"]}


def test_untainted_pool_keeps_the_default_bootstrap() -> None:
    plan = plan_pool("default")
    assert "nodeMetadata" not in plan.named(NODE_POOL, "default").inputs
    assert labels_of(plan, "default") == {"app.pixel/pool": "default"}


@pytest.mark.parametrize(
    ("name", "label", "taint", "expected"),
    [
        ("turn", ("app.pixel/turn", "true"), TURN_TAINT, "app.pixel/turn=true:NoSchedule"),
        ("gpu", ("app.pixel/gpu", "true"), GPU_TAINT, "nvidia.com/gpu=present:NoSchedule"),
    ],
)
def test_tainted_pool_registers_its_taint_through_cloud_init(name, label, taint, expected) -> None:
    plan = plan_pool(name, labels=dict([label]), taints=[taint])
    assert labels_of(plan, name) == {"app.pixel/pool": name, label[0]: label[1]}
    script = decode_user_data(plan.named(NODE_POOL, name).inputs)
    assert script.startswith("#!/bin/bash\n")
    assert "http://169.254.169.254/opc/v2/instance/metadata/oke_init_script" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    words = shlex.split(script.strip().splitlines()[-1])
    assert words == ["bash", "/var/run/oke-init.sh", "--kubelet-extra-args", f"--register-with-taints={expected}"]


def test_several_taints_are_one_kubelet_flag() -> None:
    script = taint_cloud_init([TURN_TAINT, Taint("dedicated", "media", "NoExecute")])
    assert script.strip().endswith('"--register-with-taints=app.pixel/turn=true:NoSchedule,dedicated=media:NoExecute"')


@pytest.mark.parametrize(
    ("key", "value", "effect"),
    [("bad key!", "x", "NoSchedule"), ("k", 'x"; reboot; "', "NoSchedule"), ("k", "v", "Never")],
)
def test_taints_that_could_break_the_script_are_rejected(key: str, value: str, effect: str) -> None:
    with pytest.raises(ValueError, match="taint"):
        Taint(key, value, effect)


def test_autoscaled_pool_is_left_to_the_cluster_autoscaler() -> None:
    plan = plan_pool("gpu", shape="VM.GPU.A10.1", ocpus=None, memory_gbs=None, size=2, min_size=1, max_size=8)
    pool = plan.named(NODE_POOL, "gpu")
    assert labels_of(plan, "gpu")["oke.oraclecloud.com/cluster_autoscaler"] == "managed"
    assert pool.ignore_changes == ["nodeConfigDetails.size"]
    assert pool.inputs["nodeConfigDetails"]["size"] == 2
    fixed = plan_pool("fixed").named(NODE_POOL, "fixed")
    assert fixed.ignore_changes == []
    assert "oke.oraclecloud.com/cluster_autoscaler" not in labels_of(plan_pool("fixed"), "fixed")


@pulumi.runtime.test
def test_autoscaler_nodes_output(pulumi_runtime) -> pulumi.Output:
    pool = NodePool("gpu", pool_args(shape="VM.GPU.A10.1", ocpus=None, memory_gbs=None, min_size=1, max_size=8))
    assert NodePool("fixed", pool_args()).autoscaler_nodes is None

    def check(values: list) -> None:
        nodes, image_name = values
        assert nodes == "1:8:ocid1.nodepool.offline..gpu"
        assert image_name == "Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130"

    return pulumi.Output.all(pool.autoscaler_nodes, pool.image_name).apply(check)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ocpus": None, "memory_gbs": None}, "needs both ocpus and memoryGbs"),
        ({"shape": "VM.GPU.A10.1"}, "fixed shape"),
        ({"size": 9, "min_size": 1, "max_size": 8}, r"min_size \(1\) <= size \(9\) <= max_size \(8\)"),
        ({"max_size": 3}, "both min_size and max_size"),
        ({"availability_domains": []}, "at least one availability domain"),
    ],
)
def test_args_are_checked_before_anything_is_declared(pulumi_runtime, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NodePool("pool", pool_args(**overrides))
    assert [r.type for r in pulumi_runtime.planned] == ["pulumi:pulumi:Stack"]


# -- node cycling and eviction (OKE's node pool cycling: NodePoolNodePoolCyclingDetailsArgs and
# NodePoolNodeEvictionNodePoolSettingsArgs of pulumi-oci, whose documented ranges these follow) --------------------


def test_every_pool_cycles_itself_and_drains_what_it_removes() -> None:
    from pixelstream.oci.node_pool import NodeCycling, NodeEviction

    [pool] = plan_pool(cycling=NodeCycling(2, 1), eviction=NodeEviction(45, False)).of_type(NODE_POOL)
    assert pool.inputs["nodePoolCyclingDetails"] == {
        "isNodeCyclingEnabled": True,
        "maximumSurge": "2",
        "maximumUnavailable": "1",
    }
    assert pool.inputs["nodeEvictionNodePoolSettings"] == {
        "evictionGraceDuration": "PT45M",
        "isForceDeleteAfterGraceDuration": False,
    }
    [default] = plan_pool().of_type(NODE_POOL)
    assert default.inputs["nodePoolCyclingDetails"]["maximumUnavailable"] == "0", "a new node first"
    assert default.inputs["nodeEvictionNodePoolSettings"]["evictionGraceDuration"] == "PT60M"


@pytest.mark.parametrize(
    ("cycling", "eviction", "said"),
    [
        ((0, 0), (60, True), "no node is replaced"),
        ((-1, 0), (60, True), "0 or more"),
        ((1, 0), (61, True), "0-60 minutes"),
        ((1, 0), (-1, True), "0-60 minutes"),
    ],
)
def test_cycling_that_cannot_progress_or_a_grace_oke_refuses_is_an_error(cycling, eviction, said) -> None:
    from pixelstream.oci.node_pool import NodeCycling, NodeEviction

    with pytest.raises(ValueError, match=said):
        pool_args(cycling=NodeCycling(*cycling), eviction=NodeEviction(*eviction)).validate()
