"""OkeCluster under mocks: cluster inputs, the kubeconfig secret and the Kubernetes provider."""

from __future__ import annotations

import pulumi
from conftest import COMPARTMENT

from pixelstream import OkeCluster, OkeClusterArgs
from pixelstream.tools.offline import OFFLINE_KUBECONFIG_TOKEN, OfflineMocks, Plan, run_offline

CLUSTER = "oci:ContainerEngine/cluster:Cluster"


def cluster_args(**overrides) -> OkeClusterArgs:
    args = {
        "compartment_id": COMPARTMENT,
        "vcn_id": "vcn",
        "kubernetes_version": "v1.34.2",
        "endpoint_subnet_id": "api-subnet",
        "endpoint_nsg_ids": ["api-nsg"],
        "load_balancer_subnet_id": "lb-subnet",
        "load_balancer_backend_nsg_ids": ["workers-nsg"],
    }
    return OkeClusterArgs(**{**args, **overrides})


def plan_cluster(mocks: OfflineMocks | None = None, **overrides) -> Plan:
    return run_offline(lambda: OkeCluster("oke", cluster_args(**overrides)), mocks=mocks)


def test_enhanced_flannel_cluster_with_private_endpoint_by_default() -> None:
    inputs = plan_cluster().named(CLUSTER, "oke").inputs
    assert inputs["type"] == "ENHANCED_CLUSTER"
    assert inputs["kubernetesVersion"] == "v1.34.2"
    assert inputs["clusterPodNetworkOptions"] == [{"cniType": "FLANNEL_OVERLAY"}]
    assert inputs["endpointConfig"] == {"subnetId": "api-subnet", "isPublicIpEnabled": False, "nsgIds": ["api-nsg"]}
    options = inputs["options"]
    assert options["serviceLbSubnetIds"] == ["lb-subnet"]
    assert options["serviceLbConfig"] == {"backendNsgIds": ["workers-nsg"]}
    assert options["kubernetesNetworkConfig"] == {"podsCidr": "10.244.0.0/16", "servicesCidr": "10.96.0.0/16"}
    assert options["addOns"] == {"isKubernetesDashboardEnabled": False, "isTillerEnabled": False}


def test_basic_cluster_with_vcn_native_pods_and_public_endpoint() -> None:
    inputs = plan_cluster(cluster_type="BASIC", cni="vcnNative", endpoint_public=True).named(CLUSTER, "oke").inputs
    assert inputs["type"] == "BASIC_CLUSTER"
    assert inputs["clusterPodNetworkOptions"] == [{"cniType": "OCI_VCN_IP_NATIVE"}]
    assert inputs["endpointConfig"]["isPublicIpEnabled"] is True
    assert inputs["options"]["kubernetesNetworkConfig"] == {"servicesCidr": "10.96.0.0/16"}


def test_kubeconfig_is_read_from_the_endpoint_the_cluster_has() -> None:
    for public, endpoint in ((False, "PRIVATE_ENDPOINT"), (True, "PUBLIC_ENDPOINT")):
        mocks = OfflineMocks()
        plan_cluster(mocks, endpoint_public=public)
        calls = [c.args for c in mocks.calls if c.token.endswith("getClusterKubeConfig")]
        assert calls == [{"clusterId": "ocid1.cluster.offline..oke", "endpoint": endpoint, "tokenVersion": "2.0.0"}]


def test_provider_gets_the_kubeconfig_only_as_a_secret() -> None:
    plan = plan_cluster()
    provider = plan.named("pulumi:providers:kubernetes", "oke-k8s")
    # The cluster's OCID says which cluster: a kubeconfig that changes (a run through the bastion's proxy and one
    # without) updates the provider instead of replacing it and every Kubernetes resource with it.
    assert provider.inputs == {"kubeconfig": "[secret]", "clusterIdentifier": "ocid1.cluster.offline..oke"}
    assert provider.parent == plan.named("pixelstream:index:OkeCluster", "oke").urn
    assert OFFLINE_KUBECONFIG_TOKEN not in repr(plan.resources)


@pulumi.runtime.test
async def test_kubeconfig_output_is_secret(pulumi_runtime) -> None:
    cluster = OkeCluster("oke", cluster_args())
    assert await cluster.kubeconfig.is_secret()
    assert OFFLINE_KUBECONFIG_TOKEN in await cluster.kubeconfig.future()
    assert await cluster.cluster_id.future() == "ocid1.cluster.offline..oke"
