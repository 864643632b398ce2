"""cluster.target existing: the onprem stack and variants of it plan onto a cluster the stack did not create,
through its kubeconfig (or another stack's output), with the nodes its config names and the relay confined to
the pod ranges its config names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_addons import plan_with, releases

from pixelstream.addons.charts import deep_merge
from pixelstream.config import StackConfig
from pixelstream.stack_file import OFFLINE_KUBECONFIG
from pixelstream.tools.offline import REDACTED, Plan, plan_stack
from pixelstream.tools.policies import policy_config, run_policies

PROVIDER = "pulumi:providers:kubernetes"
GPU_LABEL = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
            ]
        }
    }
}
TURN_LABEL = {"edge.example.com/turn": "yes"}
# The onprem stack with the streaming workload on: its TURN nodes labelled their own way, stream pods in a pod
# range only the GPU nodes use.
STREAMING = {
    "cluster": {
        "existing": {
            "streamPodCidrs": ["10.244.128.0/20"],
            "nodes": {"turn": {"labels": TURN_LABEL, "taints": []}},
        }
    },
    "addons": {"ingressNginx": {"enabled": True}},
    "streaming": {"enabled": True, "capacity": {"warmStreams": 1}},
}
# The other GPU workloads on it: more instances and more GPUs per worker than OKE's default GPU pool could hold
# (the stack does not know this cluster's GPU nodes, so it does not hold them to a pool it would not create), the
# weights on the cluster's own storage class.
WORKLOADS = {
    "addons": {"ingressNginx": {"enabled": True}},
    "simulation": {
        "enabled": True,
        "acceptEula": True,
        "instances": 8,
        "imagePullSecrets": ["ngc"],
        "ingress": {"allowPlainHttp": True},  # this cluster has no cert-manager
    },
    "aiWorkers": {
        "enabled": True,
        "models": [{"pipeline": "text-to-image", "modelId": "ByteDance/SDXL-Lightning", "gpus": 2}],
        "weights": {"volume": "blockVolume"},
    },
}


@pytest.fixture(scope="module")
def onprem() -> Plan:
    return plan_stack("onprem", ROOT)[0]


@pytest.fixture(scope="module")
def workloads(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_with(tmp_path_factory.mktemp("workloads"), "onprem", **WORKLOADS)


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_with(tmp_path_factory.mktemp("streaming"), "onprem", **STREAMING)


def test_no_oci_network_cluster_or_pool(onprem: Plan) -> None:
    oci = sorted({r.type for r in onprem.resources if r.type.startswith("oci:")})
    # Only what the GPU jobs keep in the tenancy: the results bucket, its lifecycle rule and IAM policy.
    assert oci == [
        "oci:Identity/policy:Policy",
        "oci:ObjectStorage/bucket:Bucket",
        "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy",
    ]
    assert "vcnId" not in onprem.outputs and "kubeconfig" not in onprem.outputs
    assert onprem.outputs["clusterTarget"] == "existing" and onprem.outputs["kubernetesVersion"] == "v1.33.1"


@pytest.mark.parametrize("variant", ["onprem", "streaming"])
def test_every_in_cluster_resource_goes_through_the_given_kubeconfig(variant: str, request) -> None:
    plan: Plan = request.getfixturevalue(variant)
    [provider] = plan.of_type(PROVIDER)
    assert provider.inputs["kubeconfig"] == REDACTED
    assert plan.named("pixelstream:index:ExistingCluster", "pixelstream-onprem").urn == provider.parent
    in_cluster = [r for r in plan.resources if r.custom and r.type.startswith("kubernetes:")]
    assert len(in_cluster) >= 20
    assert [r.name for r in in_cluster if not (r.provider or "").startswith(provider.urn + "::")] == []


def test_the_kubeconfig_never_reaches_build(onprem: Plan, tmp_path: Path) -> None:
    onprem.write(tmp_path)
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert OFFLINE_KUBECONFIG not in written and "offline-secret.invalid" not in written


def _texts(plan: Plan, tmp_path: Path) -> str:
    plan.write(tmp_path)
    return "".join(p.read_text() for p in [*tmp_path.glob("manifests/*"), *tmp_path.glob("helm/*")])


@pytest.mark.parametrize("variant", ["onprem", "streaming", "workloads"])
def test_gpu_pods_follow_the_configured_labels_everywhere(variant: str, request, tmp_path: Path) -> None:
    plan: Plan = request.getfixturevalue(variant)
    installed = releases(plan)
    plugin = installed["nvidia-device-plugin"]["values"]
    assert plugin["nodeSelector"] == GPU_LABEL and plugin["affinity"] == GPU_AFFINITY
    assert plugin["tolerations"] == [GPU_TOLERATION]
    dcgm = installed["dcgm-exporter"]["values"]
    assert (dcgm["nodeSelector"], dcgm["tolerations"]) == (GPU_LABEL, [GPU_TOLERATION])
    manifests = plan.manifests()
    gpu_pods = [m for m in manifests.values() if m["kind"] == "ScaledJob"]
    if variant == "streaming":
        streams = ("deployment.stream-main", "deployment.warm-capacity", "daemonset.stream-image-prepull")
        gpu_pods += [manifests[f"pixel.{kind}.yaml"] for kind in streams]
    if variant == "workloads":
        instances = [
            m for m in manifests.values() if m["kind"] == "StatefulSet" and m["metadata"]["namespace"] == "sim"
        ]
        assert len(instances) == WORKLOADS["simulation"]["instances"]
        gpu_pods += [*instances, manifests["ai.deployment.ai-worker.yaml"]]
    assert gpu_pods
    for obj in gpu_pods:
        template = obj["spec"].get("jobTargetRef", obj["spec"])["template"]["spec"]
        assert (template["affinity"], template["tolerations"]) == (GPU_AFFINITY, [GPU_TOLERATION]), obj["kind"]
    # OKE's labels appear nowhere: this cluster's nodes do not carry them.
    assert "app.pixel/gpu" not in _texts(plan, tmp_path)


def test_the_weights_volume_uses_the_cluster_storage_class(workloads: Plan) -> None:
    claim = workloads.manifests()["ai.persistentvolumeclaim.ai-worker-weights.yaml"]
    assert claim["spec"]["storageClassName"] == "local-path"


def test_turn_nodes_are_found_by_their_configured_labels(streaming: Plan) -> None:
    manifests = streaming.manifests()
    turn = manifests["pixel.daemonset.turn.yaml"]["spec"]["template"]["spec"]
    terms = turn["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "edge.example.com/turn", "operator": "In", "values": ["yes"]}]}]
    assert turn["tolerations"] == []
    sessions = manifests["pixel.deployment.session.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TURN_NODE_SELECTOR", "value": "edge.example.com/turn=yes"} in sessions["env"]


def _turn_conf(plan: Plan) -> str:
    return plan.manifests()["pixel.configmap.coturn.yaml"]["data"]["turnserver.conf"]


def test_the_relay_reaches_exactly_the_configured_stream_pods(streaming: Plan) -> None:
    conf = _turn_conf(streaming)
    assert [line for line in conf.splitlines() if line.startswith("allowed-peer-ip")] == [
        "allowed-peer-ip=10.244.128.0-10.244.143.255"
    ]
    for denied in ("192.168.50.0-192.168.50.255", "10.96.0.0-10.111.255.255", "10.244.0.0-10.244.255.255"):
        assert f"denied-peer-ip={denied}" in conf, denied


def test_the_policy_pack_holds_the_relay_to_the_configured_ranges(streaming: Plan, tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.onprem.yaml"
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.onprem.yaml").read_text())
    for key, value in STREAMING.items():
        document["config"][f"pixelstream:{key}"] = deep_merge(document["config"].get(f"pixelstream:{key}", {}), value)
    stack_file.write_text(yaml.safe_dump(document))
    settings = policy_config(StackConfig.from_stack_file(stack_file))
    relay = settings["turn-relays-only-to-stream-pods"]
    assert relay == {
        "allowRelayToAllPods": False,
        "streamPodCidrs": ["10.244.128.0/20"],
        "forbiddenCidrs": ["192.168.50.0/24", "10.96.0.0/12"],
    }
    streaming.write(tmp_path / "build")
    resources = json.loads((tmp_path / "build" / "resources.json").read_text())["resources"]
    assert not [v for v in run_policies(resources, streaming.outputs, settings) if "relay" in v.policy]
    # A relay that reaches the whole pod range (or a node) breaks the policy.
    for wider in ("10.244.0.0-10.244.255.255", "192.168.50.0-192.168.50.255"):
        widened = json.loads(json.dumps(resources).replace("10.244.128.0-10.244.143.255", wider))
        violations = [v for v in run_policies(widened, streaming.outputs, settings) if "relay" in v.policy]
        assert violations, wider


def test_without_stream_pod_ranges_the_relay_reaches_all_pods_only_when_accepted(tmp_path: Path) -> None:
    accepted = {
        **STREAMING,
        "cluster": {"existing": {"nodes": STREAMING["cluster"]["existing"]["nodes"]}},
        "streaming": {"enabled": True, "turn": {"allowRelayToAllPods": True}},
    }
    plan = plan_with(tmp_path, "onprem", **accepted)
    assert "allowed-peer-ip=10.244.0.0-10.244.255.255" in _turn_conf(plan)
    assert any("allowRelayToAllPods" in w and "cluster.existing.streamPodCidrs" in w for w in plan.warnings)


def test_the_ingress_controller_gets_no_oci_annotations(streaming: Plan) -> None:
    service = releases(streaming)["ingress-nginx"]["values"]["controller"]["service"]
    assert service["annotations"] == {}
    assert not [r for r in streaming.resources if "NetworkSecurityGroup" in r.type]


def test_the_plan_says_what_it_leaves_out(onprem: Plan, streaming: Plan) -> None:
    said = " ".join(onprem.warnings)
    assert "no OCI network, cluster or node pools" in said
    assert "off: OKE add-ons (ClusterAutoscaler, NvidiaGpuPlugin), network security groups" in said
    assert "persistent volumes use storage class local-path instead of oci-bv" in said
    assert "GPU nvidia.com/gpu.present=true" in said and "TURN" not in said
    assert "OCI load-balancer annotations" in " ".join(streaming.warnings)
    assert "TURN edge.example.com/turn=yes" in " ".join(streaming.warnings)
    assert not [r for r in onprem.resources if r.type == "oci:ContainerEngine/addon:Addon"]
    monitoring = releases(onprem)["kube-prometheus-stack"]["values"]["prometheus"]["prometheusSpec"]
    assert monitoring["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "local-path"
    assert monitoring["nodeSelector"] == {"app.pixel/pool": "default"}


def test_a_kubeconfig_from_another_stack(tmp_path: Path) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.onprem.yaml").read_text())
    existing = document["config"]["pixelstream:cluster"]["existing"]
    del existing["kubeconfig"]
    existing |= {"stackReference": "acme/gpu-cluster/onprem", "stackOutput": "kubeconfig"}
    stack_file = tmp_path / "Pulumi.onprem.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    plan, notes = plan_stack("onprem", ROOT, stack_file)
    [reference] = plan.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "acme/gpu-cluster/onprem"
    [provider] = plan.of_type(PROVIDER)
    assert provider.inputs["kubeconfig"] == REDACTED and reference.urn in provider.dependencies
    assert not [n for n in notes if "kubeconfig" in n]


def test_the_existing_cluster_component_wants_exactly_one_way_in() -> None:
    from pixelstream.oci.existing_cluster import ExistingClusterArgs

    with pytest.raises(ValueError, match="exactly one"):
        ExistingClusterArgs(kubernetes_version="v1.33.1").validate()
    with pytest.raises(ValueError, match="exactly one"):
        ExistingClusterArgs(kubernetes_version="v1.33.1", kubeconfig="x", stack_reference="a/b/c").validate()
