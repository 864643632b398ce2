"""The offline plan of the real stacks: what `make plan` declares and writes, and how it fails."""

from __future__ import annotations

import copy
import json
import os
import runpy
import subprocess
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from conftest import ROOT, decode_user_data
from test_config import INVALID, invalid_raw

from pixelstream.config import ConfigError
from pixelstream.tools.offline import (
    OFFLINE_KUBECONFIG_TOKEN,
    REDACTED,
    SECRET_PLACEHOLDER,
    OfflineMocks,
    Plan,
    engine_urn,
    main,
    plan_stack,
    read_stack_config,
    run_offline,
)

NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
NODE_POOL = "oci:ContainerEngine/nodePool:NodePool"


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_stack("prod", ROOT)[0]


def pools(plan: Plan) -> dict[str, dict]:
    return {r.name: r.inputs for r in plan.of_type(NODE_POOL)}


def test_dev_is_the_smallest_working_environment(dev: Plan) -> None:
    cluster = dev.named("oci:ContainerEngine/cluster:Cluster", "pixelstream-dev").inputs
    assert cluster["endpointConfig"]["isPublicIpEnabled"] is True
    api_ingress = {
        r.inputs["source"] for r in dev.of_type(NSG_RULE) if r.name.startswith("pixelstream-dev-api-in-tcp-6443")
    }
    assert api_ingress == {
        "198.51.100.0/24",
        "ocid1.networksecuritygroup.offline..pixelstream-dev-workers-nsg",
        "ocid1.networksecuritygroup.offline..pixelstream-dev-turn-nsg",
        "ocid1.networksecuritygroup.offline..pixelstream-dev-pods-nsg",
        "ocid1.networksecuritygroup.offline..pixelstream-dev-streams-nsg",
    }
    by_name = pools(dev)
    assert set(by_name) == {"default", "turn", "gpu"}
    for spec in by_name.values():
        assert [p["availabilityDomain"] for p in spec["nodeConfigDetails"]["placementConfigs"]] == [
            "OFFLINE:US-ASHBURN-1-AD-1"
        ]
    assert by_name["turn"]["nodeConfigDetails"]["size"] == 1
    assert (by_name["gpu"]["nodeShape"], by_name["gpu"]["nodeConfigDetails"]["size"]) == ("VM.GPU.A10.1", 1)


def test_prod_spreads_nodes_and_keeps_the_api_private(prod: Plan) -> None:
    cluster = prod.named("oci:ContainerEngine/cluster:Cluster", "pixelstream-prod").inputs
    assert cluster["endpointConfig"]["isPublicIpEnabled"] is False
    api_subnet = prod.named("oci:Core/subnet:Subnet", "pixelstream-prod-api-subnet").inputs
    assert api_subnet["prohibitPublicIpOnVnic"] is True
    assert not [r for r in prod.of_type(NSG_RULE) if r.inputs.get("source") == "0.0.0.0/0" and "-api-" in r.name]
    by_name = pools(prod)
    ads = {
        name: [p["availabilityDomain"] for p in spec["nodeConfigDetails"]["placementConfigs"]]
        for name, spec in by_name.items()
    }
    assert ads["default"] == [f"OFFLINE:US-ASHBURN-1-AD-{i}" for i in (1, 2, 3)]
    assert ads["gpu"] == ads["default"]
    assert by_name["default"]["nodeConfigDetails"]["size"] >= 3
    assert by_name["turn"]["nodeConfigDetails"]["size"] == 2
    assert prod.named(NODE_POOL, "gpu").ignore_changes == ["nodeConfigDetails.size"]
    assert prod.outputs["autoscalerNodes"] == {"gpu": "1:5:ocid1.nodepool.offline..gpu"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_pool_carries_its_labels_and_taint_bootstrap(stack: str, dev: Plan, prod: Plan) -> None:
    plan = {"dev": dev, "prod": prod}[stack]
    by_name = pools(plan)
    labels = {
        name: {label["key"]: label["value"] for label in spec["initialNodeLabels"]} for name, spec in by_name.items()
    }
    assert labels["turn"]["app.pixel/turn"] == "true"
    assert labels["gpu"]["app.pixel/gpu"] == "true"
    assert "--register-with-taints=app.pixel/turn=true:NoSchedule" in decode_user_data(by_name["turn"])
    assert "--register-with-taints=nvidia.com/gpu=present:NoSchedule" in decode_user_data(by_name["gpu"])
    assert "nodeMetadata" not in by_name["default"]
    assert by_name["turn"]["nodeConfigDetails"]["placementConfigs"][0]["subnetId"].endswith("-turn-subnet")
    assert "GPU" in by_name["gpu"]["nodeSourceDetails"]["imageId"]
    assert "GPU" not in by_name["default"]["nodeSourceDetails"]["imageId"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stream_pods_live_in_their_own_subnet_and_group(stack: str, request: pytest.FixtureRequest) -> None:
    plan: Plan = request.getfixturevalue(stack)
    prefix = f"ocid1.{{}}.offline..pixelstream-{stack}"
    pod_network = {
        name: spec["nodeConfigDetails"]["nodePoolPodNetworkOptionDetails"] for name, spec in pools(plan).items()
    }
    for pool, subnet in (("default", "pods"), ("turn", "pods"), ("gpu", "streams")):
        assert pod_network[pool] == {
            "cniType": "OCI_VCN_IP_NATIVE",
            "podSubnetIds": [prefix.format("subnet") + f"-{subnet}-subnet"],
            "podNsgIds": [prefix.format("networksecuritygroup") + f"-{subnet}-nsg"],
            "maxPodsPerNode": 31,
        }, pool


def test_resources_json_lists_every_resource_with_parent_and_redacted_secrets(dev: Plan, tmp_path: Path) -> None:
    dev.write(tmp_path / "dev")
    document = json.loads((tmp_path / "dev" / "resources.json").read_text())
    types = [r["type"] for r in document["resources"]]
    for type_, count in {
        "oci:Core/vcn:Vcn": 1,
        "oci:Core/internetGateway:InternetGateway": 1,
        "oci:Core/natGateway:NatGateway": 1,
        "oci:Core/serviceGateway:ServiceGateway": 1,
        "oci:Core/routeTable:RouteTable": 2,
        "oci:Core/subnet:Subnet": 6,
        "oci:ContainerEngine/cluster:Cluster": 1,
        NODE_POOL: 3,
    }.items():
        assert types.count(type_) == count, type_
    vcn = next(r for r in document["resources"] if r["type"] == "oci:Core/vcn:Vcn")
    assert vcn["parent"] == "pixelstream:index:Network::pixelstream-dev"
    provider = next(r for r in document["resources"] if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == REDACTED
    outputs = json.loads((tmp_path / "dev" / "outputs.json").read_text())
    assert outputs["kubeconfig"] == REDACTED
    assert outputs["nodeImages"]["gpu"].startswith("Oracle-Linux-8.10-Gen2-GPU-")
    everything = "".join(p.read_text() for p in (tmp_path / "dev").rglob("*") if p.is_file())
    assert OFFLINE_KUBECONFIG_TOKEN not in everything


def test_plan_writes_kubernetes_objects_and_helm_releases(tmp_path: Path) -> None:
    def program() -> None:
        k8s.core.v1.ConfigMap(
            "settings",
            metadata={"name": "settings", "namespace": "pixel"},
            data={"replicas": "3"},
        )
        k8s.apps.v1.Deployment(
            "web",
            metadata={"namespace": "pixel"},
            spec={
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]
                    },
                },
            },
        )
        k8s.core.v1.Secret(
            "token", metadata={"namespace": "pixel"}, string_data={"token": pulumi.Output.secret("hunter2")}
        )
        k8s.helm.v3.Release(
            "metrics",
            name="metrics-server",
            chart="metrics-server",
            version="3.13.0",
            namespace="kube-system",
            repository_opts={"repo": "https://kubernetes-sigs.github.io/metrics-server/"},
            values={"replicas": 2},
        )

    plan = run_offline(program)
    plan.write(tmp_path)
    deployment = yaml.safe_load((tmp_path / "manifests" / "pixel.deployment.web.yaml").read_text())
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    assert deployment["metadata"] == {"name": "web", "namespace": "pixel"}
    assert deployment["spec"]["replicas"] == 2 and isinstance(deployment["spec"]["replicas"], int)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080
    config_map = yaml.safe_load((tmp_path / "manifests" / "pixel.configmap.settings.yaml").read_text())
    assert config_map["apiVersion"] == "v1" and config_map["data"] == {"replicas": "3"}
    secret = yaml.safe_load((tmp_path / "manifests" / "pixel.secret.token.yaml").read_text())
    assert secret["stringData"] == {"token": REDACTED}, "shape kept, value hidden"
    release = yaml.safe_load((tmp_path / "helm" / "metrics-server.yaml").read_text())
    assert release == {
        "release": "metrics-server",
        "chart": "metrics-server",
        "version": "3.13.0",
        "repository": "https://kubernetes-sigs.github.io/metrics-server/",
        "namespace": "kube-system",
        "values": {"replicas": 2},
    }
    assert "hunter2" not in "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_secure_stack_values_become_secret_placeholders(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.s.yaml"
    stack_file.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "pixelstream:token": {"secure": "v1:abc"},
                    "pixelstream:nested": {"a": {"secure": "v1:x"}, "b": 1},
                }
            }
        )
    )
    settings = read_stack_config(stack_file, "pixelstream")
    assert settings.values["pixelstream:token"] == SECRET_PLACEHOLDER
    assert json.loads(settings.values["pixelstream:nested"]) == {"a": SECRET_PLACEHOLDER, "b": 1}
    assert sorted(settings.secret_keys) == ["pixelstream:nested", "pixelstream:token"]
    assert sorted(settings.encrypted) == ["pixelstream:nested.a", "pixelstream:token"]


def test_a_region_with_one_availability_domain_rejects_index_two(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.one-ad.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"pixelstream:nodePools": {"gpu": {"availabilityDomains": [2]}}}}))
    with pytest.raises(pulumi.RunError, match=r"pixelstream:nodePools\.gpu\.availabilityDomains: 2 .* has 1"):
        plan_stack("one-ad", ROOT, stack_file, mocks=OfflineMocks(availability_domains=1))


# The offline plan stands in for a missing compartmentId (stack files leave it to each user), so that case
# is checked against the stack program directly below.
PLANNABLE_INVALID = [case for case in INVALID if "compartmentId" in invalid_raw(case[1])]


def encrypted_credentials(raw: dict, but: str) -> dict:
    """`raw` as a stack file holds it: every credential `secure:` (the offline plan puts a valid stand-in in its
    place), but the one the case is about, which stays as it is."""
    from pixelstream.config import credential_paths

    raw = copy.deepcopy(raw)
    for key_path in credential_paths(raw):
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in key_path).replace(".[", "[")
        if not dotted.startswith(but):
            parent = raw
            for part in key_path[:-1]:
                parent = parent[part]
            parent[key_path[-1]] = {"secure": "v1:offline"}
    return raw


@pytest.mark.parametrize(
    ("case", "overrides", "path", "words"), PLANNABLE_INVALID, ids=[c[0] for c in PLANNABLE_INVALID]
)
def test_every_invalid_config_fails_the_plan_with_one_line(case, overrides, path, words, tmp_path, capsys) -> None:
    raw = encrypted_credentials(invalid_raw(overrides), but=path)
    config = {f"pixelstream:{key}": value for key, value in raw.items()}
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(yaml.safe_dump({"config": config}))
    status = main(
        ["--stack", "bad", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: pixelstream:{path}"), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "bad").exists()


def test_the_stack_program_requires_a_compartment() -> None:
    program = ROOT / "infra" / "__main__.py"
    with pytest.raises(ConfigError, match=r"^pixelstream:compartmentId: is required \(pulumi config set compartmentId"):
        run_offline(lambda: runpy.run_path(str(program)), project="pixelstream", config={"oci:region": "us-ashburn-1"})


def make(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(Path(os.sys.prefix))}
    return subprocess.run(["make", "-s", "-C", str(ROOT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["dev", "prod", "sim"])
def test_make_plan(stack: str, tmp_path: Path) -> None:
    result = make("plan", f"STACK={stack}")
    assert result.returncode == 0, result.stderr
    assert f"pixelstream-{stack} (pixelstream:index:Network" in result.stdout
    assert "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule x" in result.stdout
    assert f"wrote build/{stack}/resources.json" in result.stdout
    assert "kube-prometheus-stack    kube-prometheus-stack 88.5.3 -> namespace monitoring" in result.stdout
    for name in ("resources.json", "outputs.json", "manifests", "helm"):
        assert (ROOT / "build" / stack / name).exists()
    assert "pixel-streaming-capacity (pixelstream:index:GpuCapacity" in result.stdout
    assert ("simulation (pixelstream:index:Simulation" in result.stdout) == (stack == "sim")
    if stack == "prod":
        assert "cluster-autoscaler (pixelstream:index:ClusterAutoscaler, 2 resources)" in result.stdout
        assert "IAM policy pixelstream-prod-cluster-autoscaler:" in result.stdout
        assert "request.principal.cluster_id = 'ocid1.cluster.offline..pixelstream-prod'}" in result.stdout
    else:
        assert "IAM policy" not in result.stdout, "dev autoscales no pool"


SHIPPED = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_plans_and_passes_the_policy_pack(stack: str, tmp_path: Path, capsys) -> None:
    from pixelstream.tools.checks import main as checks

    assert main(["--stack", stack, "--project-dir", str(ROOT), "--out", str(tmp_path)]) == 0
    assert (tmp_path / stack / "resources.json").is_file()
    stack_file = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    assert checks(["policies", str(tmp_path / stack), "--stack-file", str(stack_file)]) == 0
    assert checks(["manifests", str(tmp_path / stack)]) == 0, capsys.readouterr().err


def test_make_simulate_compares_reference_dev_and_prod() -> None:
    result = make("simulate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trace launch-burst: ")
    assert result.stdout.splitlines()[1].split() == ["reference", "dev", "prod"]
    assert (ROOT / "build" / "simulate" / "timeline.png").exists()


def test_make_plan_with_a_bad_stack_file_is_one_line_and_nonzero(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"pixelstream:nodePools": {"gpu": {"shape": "BM.GPU.H100.8"}}}}))
    result = make("plan", "STACK=bad", f"STACK_FILE={stack_file}")
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert error_lines == [
        "error: pixelstream:nodePools.gpu.shape: BM.GPU.H100.8 (NVIDIA H100) has no hardware video encoder (NVENC); "
        "pixel streaming needs one: use VM.GPU2.1, BM.GPU2.2, VM.GPU3.1, VM.GPU3.2, VM.GPU3.4, BM.GPU3.8, "
        "VM.GPU.A10.1, VM.GPU.A10.2, BM.GPU.A10.4, BM.GPU.L40S.4"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_make_plan_names_the_stacks_when_one_is_missing() -> None:
    result = make("plan", "STACK=staging")
    assert result.returncode != 0
    stacks = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*"))
    assert {"dev", "prod"} <= set(stacks)
    assert f"stacks here: {', '.join(stacks)}" in result.stderr


# What the player edge (issue 19) retired on purpose: the reference's router, matchmaker and player, the ICE
# config service and the streams' deletion-cost agent; the session service does their work.
RETIRED_BY_THE_PLAYER_EDGE = {
    *(
        f"kubernetes:{kind}::router"
        for kind in ("apps/v1:Deployment", "core/v1:Service", "policy/v1:PodDisruptionBudget")
    ),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler::router-autoscaler",
    "kubernetes:core/v1:ConfigMap::router-config",
    *(f"kubernetes:{kind}::matchmaker" for kind in ("apps/v1:Deployment", "core/v1:Service")),
    *(
        f"kubernetes:{kind}::player"
        for kind in ("apps/v1:Deployment", "core/v1:Service", "policy/v1:PodDisruptionBudget")
    ),
    "kubernetes:core/v1:ConfigMap::pixel-app-configs",
    "kubernetes:core/v1:ConfigMap::stream-helpers",
    "kubernetes:core/v1:ServiceAccount::stream",
    *(f"kubernetes:rbac.authorization.k8s.io/v1:{kind}::stream-deletion-cost" for kind in ("Role", "RoleBinding")),
    *(
        f"kubernetes:{kind}::ice-config"
        for kind in ("apps/v1:Deployment", "core/v1:Service", "core/v1:ServiceAccount", "policy/v1:PodDisruptionBudget")
    ),
    *(
        f"kubernetes:rbac.authorization.k8s.io/v1:{kind}::ice-config-nodes"
        for kind in ("ClusterRole", "ClusterRoleBinding")
    ),
}


# What the pod-to-pod boundaries (issue 20) retired on purpose: the GPU pods' TCP to every port of the system pods,
# now DNS and the named engines' ports only.
RETIRED_BY_THE_POD_BOUNDARIES = {
    f"oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule::pixelstream-{{stack}}-{rule}"
    for rule in ("streams-out-tcp-to-pods", "pods-in-tcp-from-streams")
}


# What builds side by side (issue 22) retired on purpose: the one stream Deployment and its autoscaler, now
# stream-<build> for each build (a Deployment's selector cannot change in place: the build label replaces it).
RETIRED_BY_BUILDS = {
    "kubernetes:apps/v1:Deployment::stream",
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler::stream-autoscaler",
    "pixelstream:index:Streaming::pixel-streaming-streaming",
}
# What the session service's own scaler (issue 23) retired on purpose: the custom metrics adapter, whose one
# reader was the streams' HPA.
RETIRED_BY_THE_SCALER = {
    "kubernetes:helm.sh/v3:Release::prometheus-adapter",
    "kubernetes:core/v1:Namespace::custom-metrics",
    # a component at the top of the old layout: its whole URN
    "urn:pulumi:{stack}::pixelstream::pixelstream:index:CustomMetricsAdapter::prometheus-adapter",
}
# What prod no longer wants since it keeps started streams (issue 23): its warm placeholder.
RETIRED_IN_PROD_BY_THE_BUFFER = {"kubernetes:apps/v1:Deployment::warm-capacity"}
# What builds moved: the streams' disruption budget, from the one Streaming component to PixelStreaming (all
# builds' streams), aliased to its URN under the Platform layout (test below), where every stack has it now.
MOVED_BY_BUILDS = {"kubernetes:policy/v1:PodDisruptionBudget::stream"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_existing_stacks_keep_every_resource_across_the_layout_change(stack: str) -> None:
    """Every URN a stack had before the Platform component (tests/data) is still a resource's URN or alias, but
    for what the player edge and the pod boundaries retired on purpose."""
    recorded = json.loads((ROOT / "tests" / "data" / "urns-before-layout.json").read_text())[stack]
    before = [engine_urn(urn) for urn in recorded]
    plan, _ = plan_stack(stack, ROOT)
    known = plan.known_urns()
    retired = RETIRED_BY_THE_PLAYER_EDGE | RETIRED_BY_BUILDS | MOVED_BY_BUILDS
    retired |= {urn.format(stack=stack) for urn in RETIRED_BY_THE_POD_BOUNDARIES | RETIRED_BY_THE_SCALER}
    retired |= RETIRED_IN_PROD_BY_THE_BUFFER if stack == "prod" else set()
    assert {urn.rsplit("$", 1)[-1] for urn in before if urn not in known} == retired
    # and the aliases are real: without the Platform's alias, nothing before would be found
    assert not {urn for urn in before if "pixelstream:index:Platform" in urn}


def test_the_streams_disruption_budget_keeps_its_identity_across_builds() -> None:
    """A second PodDisruptionBudget `stream` beside the first would clash: the moved one is the same resource."""
    plan, _ = plan_stack("dev", ROOT)
    [budget] = [
        r for r in plan.resources if r.type == "kubernetes:policy/v1:PodDisruptionBudget" and r.name == "stream"
    ]
    chain = "pixelstream:index:Platform$pixelstream:index:PixelStreaming$pixelstream:index:Streaming"
    before = f"urn:pulumi:dev::pixelstream::{chain}$kubernetes:policy/v1:PodDisruptionBudget::stream"
    assert before in budget.aliases
