"""The simulation fleet as the sim stack plans it: instances on GPU nodes with shared memory, limits and probes
and a pod address of their own; the NGC pull Secret; the orchestration service with exactly its Role; the
Ingress behind generated basic auth; and what the fleet's config refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pulumi
import pytest
import yaml
from conftest import ROOT
from test_addons import plan_with
from test_stack_files import FLEET, _dev, run_plan
from test_workload import containers, manifest, pod_specs

from pixelstream.constants import GPU_NODE_LABEL, GPU_RESOURCE
from pixelstream.stack_file import SECRET_PLACEHOLDER
from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.images import IMAGES
from pixelstream.workloads.simulation.fleet import APP_READY, docker_config

NS = "sim"
SIM_APP = ROOT / "components" / "workloads" / "simulation" / "app"


@pytest.fixture(scope="module")
def sim() -> Plan:
    return plan_stack("sim", ROOT)[0]


def statefulset(plan: Plan, index: int) -> dict:
    return manifest(plan, "statefulset", f"sim-{index}", NS)


def test_each_instance_is_a_statefulset_of_one_pod_on_a_gpu_node(sim: Plan) -> None:
    for index in range(3):
        spec = statefulset(sim, index)["spec"]
        assert "replicas" not in spec, "the orchestration service owns the count"
        assert spec["serviceName"] == "isaac-sim"
        assert spec["selector"]["matchLabels"]["pixelstream/instance"] == str(index)
        pod = spec["template"]["spec"]
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term == [{"matchExpressions": [{"key": GPU_NODE_LABEL[0], "operator": "In", "values": ["true"]}]}]
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert "hostNetwork" not in pod, "a pod address of its own, in the stream pod subnet"
        assert pod["automountServiceAccountToken"] is False
        assert pod["imagePullSecrets"] == [{"name": "ngc-registry"}]
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def test_instances_take_whole_gpus_with_shm_limits_and_probes(sim: Plan) -> None:
    pod = statefulset(sim, 0)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == IMAGES["isaacsim"] == "nvcr.io/nvidia/isaac-sim:6.0.1"
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", GPU_RESOURCE: "1"},
        "limits": {"cpu": "8", "memory": "16Gi", GPU_RESOURCE: "1"},
    }
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    assert container["volumeMounts"][0] == {"name": "dshm", "mountPath": "/dev/shm"}
    startup = container["startupProbe"]
    assert startup["exec"]["command"] == ["bash", "-c", APP_READY] and "AppReady" in APP_READY
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1200, "startupTimeoutSeconds"
    assert container["readinessProbe"]["tcpSocket"] == {"port": "signal"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "signal"}
    assert container["securityContext"]["runAsUser"] == 1234 and container["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Nothing serves HTTP at 6.0.1 (the streaming app loads no HTTP server): signalling and media only.
    assert {p["name"]: (p["containerPort"], p["protocol"]) for p in container["ports"]} == {
        "signal": (49100, "TCP"),
        "stream": (47998, "UDP"),
    }
    assert not [a for a in container["args"] if "transport.server.http" in a]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["ISAACSIM_HOST"] == manifest(sim, "service", "sim-0", NS)["spec"]["loadBalancerIP"], "published"
    assert (env["ISAACSIM_SIGNAL_PORT"], env["ISAACSIM_STREAM_PORT"], env["ACCEPT_EULA"]) == ("49100", "47998", "Y")


def test_whole_gpus_and_sizes_from_config(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        nodePools={"gpu": {"shape": "VM.GPU.A10.2", "size": 1}},
        simulation={
            "enabled": True,
            "acceptEula": True,
            "allowGpuBelowMinimum": True,
            "instances": 2,
            "memory": "20Gi",
            "memoryLimit": "24Gi",
            "shmSize": "8Gi",
            "startupTimeoutSeconds": 600,
            "imagePullSecrets": ["my-registry"],
            "images": {"isaacsim": "registry.example/isaac-sim:6.0.1"},
            "ingress": {"host": "sim.example.com"},
        },
    )
    pod = statefulset(plan, 1)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "24Gi", GPU_RESOURCE: "1"}
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "8Gi"
    assert container["startupProbe"]["failureThreshold"] == 60
    assert container["image"] == "registry.example/isaac-sim:6.0.1"
    assert pod["imagePullSecrets"] == [{"name": "my-registry"}], "no NGC key, no NGC Secret"
    assert not [name for name in plan.manifests() if name == "sim.secret.ngc-registry.yaml"]


def test_the_ngc_key_is_a_pull_secret_and_never_plain(sim: Plan, tmp_path: Path) -> None:
    secret = manifest(sim, "secret", "ngc-registry", NS)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["stringData"] == {".dockerconfigjson": "[secret]"}
    sim.write(tmp_path / "sim")
    written = "".join(p.read_text() for p in (tmp_path / "sim").rglob("*") if p.is_file())
    encoded = base64.b64encode(f"$oauthtoken:{SECRET_PLACEHOLDER}".encode()).decode()
    assert SECRET_PLACEHOLDER not in written and encoded not in written


def test_a_plain_text_ngc_key_is_refused_without_showing_it(tmp_path: Path, capsys) -> None:
    status, lines, everything, _ = run_plan(_dev(simulation={**FLEET, "ngcApiKey": "nvapi-leaky"}), tmp_path, capsys)
    assert status == 2 and lines == [
        "error: pixelstream:simulation.ngcApiKey: is plain text in the stack file; store it encrypted: "
        "pulumi config set --secret --path simulation.ngcApiKey <value>"
    ]
    assert "nvapi-leaky" not in everything and not (tmp_path / "fuzz").exists(), "refused before anything"


def test_docker_config_logs_in_to_ngc() -> None:
    config = json.loads(docker_config("nvapi-123"))
    entry = config["auths"]["nvcr.io"]
    assert (entry["username"], entry["password"]) == ("$oauthtoken", "nvapi-123")
    assert base64.b64decode(entry["auth"]).decode() == "$oauthtoken:nvapi-123"


def test_orchestrator_role_allows_exactly_its_api(sim: Plan) -> None:
    role = manifest(sim, "role", "sim-orchestrator", NS)
    pods, statefulsets = ["sim-0-0", "sim-1-0", "sim-2-0"], ["sim-0", "sim-1", "sim-2"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"], "resourceNames": pods},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"], "resourceNames": pods},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "verbs": ["patch"], "resourceNames": statefulsets},
    ]
    binding = manifest(sim, "rolebinding", "sim-orchestrator", NS)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sim-orchestrator", "namespace": NS}]
    assert binding["roleRef"]["kind"] == "Role"
    cluster_wide = [n for n in sim.manifests() if n.startswith(("clusterrole", "clusterrolebinding")) and "sim" in n]
    assert cluster_wide == []


def test_orchestrator_runs_this_projects_program_with_only_its_container_holding_a_token(sim: Plan) -> None:
    helpers = manifest(sim, "configmap", "sim-helpers", NS)["data"]
    for name in ("sim_orchestrator.py", "dashboard.html"):
        assert helpers[name] == (SIM_APP / name).read_text()
    assert "kube.py" in helpers
    spec = pod_specs(sim)["Deployment/sim-orchestrator"]
    assert spec["serviceAccountName"] == "sim-orchestrator" and spec["automountServiceAccountToken"] is False
    [container] = containers(spec)
    assert container["image"] == IMAGES["python"]
    assert container["command"] == ["python", "/helpers/sim_orchestrator.py"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    addresses = [manifest(sim, "service", f"sim-{i}", NS)["spec"]["loadBalancerIP"] for i in range(3)]
    assert env["INSTANCES"] == "3" and json.loads(env["STREAMS"]) == [
        {"host": address, "signalPort": 49100, "mediaPort": 47998, "viewerUrl": None} for address in addresses
    ]
    config = json.loads(env["FLEET_CONFIG"])
    assert config["ports"] == {"signal": 49100, "stream": 47998}
    assert (config["instancesPerGpu"], config["shmSize"], config["memoryLimit"]) == (1, "2Gi", "16Gi")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = manifest(sim, "service", "sim-orchestrator", NS)["spec"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_the_dashboard_asks_for_the_operator_itself_behind_an_https_route(sim: Plan, tmp_path: Path) -> None:
    """One route, to the dashboard and API, which ask for the credential themselves (the controller strips the
    Authorization header after a basic auth of its own: `proxy_set_header Authorization ""` in
    rootfs/etc/nginx/template/nginx.tmpl at controller-v1.15.1); no route to the instances, which serve no HTTP."""
    ingresses = {m["metadata"]["name"]: m for m in sim.manifests().values() if m["kind"] == "Ingress"}
    assert [n for n, m in ingresses.items() if m["metadata"]["namespace"] == NS] == ["simulation"]
    ingress = ingresses["simulation"]
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["tls"] == [{"hosts": ["sim.example.com"], "secretName": "simulation-tls"}]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    # Plain HTTP is redirected even before the certificate exists, so no password crosses it.
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert "nginx.ingress.kubernetes.io/auth-type" not in annotations
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert {p["path"]: p["backend"]["service"]["name"] for p in paths} == {"/sim/(.*)": "sim-orchestrator"}
    # The route waits for the service that checks the credential (an older one checked nothing).
    orchestrator = sim.named("kubernetes:apps/v1:Deployment", "sim-orchestrator").urn
    assert orchestrator in sim.named("kubernetes:networking.k8s.io/v1:Ingress", "simulation").dependencies
    [container] = containers(pod_specs(sim)["Deployment/sim-orchestrator"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["AUTH_USER"], env["AUTH_REALM"]) == ("operator", "pixelstream simulation fleet")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert env["AUTH_SHA256_FILE"].rsplit("/", 1)[0] in mounts
    assert manifest(sim, "secret", "sim-operator-digest", NS)["stringData"] == {"sha256": "[secret]"}
    assert "sim.secret.sim-basic-auth.yaml" not in sim.manifests(), "no htpasswd: nothing asks at the controller"
    sim.write(tmp_path / "sim")
    outputs = json.loads((tmp_path / "sim" / "outputs.json").read_text())
    assert outputs["simulationUrl"] == "https://sim.example.com/sim/"
    assert outputs["simulationUsername"] == outputs["simulationPassword"] == "[secret]"


def test_each_instance_is_published_for_the_viewers_by_a_network_load_balancer_of_its_own(sim: Plan) -> None:
    from test_chart_renders import ccm_problems

    addresses = []
    for index in range(3):
        service = manifest(sim, "service", f"sim-{index}", NS)
        spec, annotations = service["spec"], service["metadata"]["annotations"]
        assert spec["selector"]["pixelstream/instance"] == str(index)
        assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]] == [
            ("signal", 49100, "TCP", "signal"),
            ("stream", 47998, "UDP", "stream"),
        ]
        assert (spec["type"], spec["externalTrafficPolicy"]) == ("LoadBalancer", "Local")
        assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
        assert annotations == {
            "oci.oraclecloud.com/load-balancer-type": "nlb",
            "oci.oraclecloud.com/security-rule-management-mode": "None",
            "oci-network-load-balancer.oraclecloud.com/node-label-selector": "app.pixel/gpu=true",
            "oci-network-load-balancer.oraclecloud.com/oci-network-security-groups": "ocid1.networksecuritygroup."
            "offline..pixelstream-sim-lb-nsg",
            "oci-network-load-balancer.oraclecloud.com/is-preserve-source": "false",
        }
        assert not ccm_problems(service)
        addresses.append(spec["loadBalancerIP"])
    reserved = {r.name: r for r in sim.of_type("oci:Core/publicIp:PublicIp")}
    assert sorted(reserved) == ["sim-0-stream", "sim-1-stream", "sim-2-stream"]
    assert {r.inputs["lifetime"] for r in reserved.values()} == {"RESERVED"}
    assert len(set(addresses)) == 3


def test_the_viewers_reach_exactly_the_stream_ports_of_the_load_balancers(sim: Plan) -> None:
    rules = [
        r.inputs for r in sim.of_type("oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule")
    ]
    from_viewers = sorted(
        (r["protocol"], (r.get("tcpOptions") or r.get("udpOptions"))["destinationPortRange"]["min"])
        for r in rules
        if r.get("source") == "198.51.100.0/24"
        and r["direction"] == "INGRESS"
        and "lb-nsg" in r["networkSecurityGroupId"]
    )
    assert from_viewers == [("17", 47998), ("6", 49100)]
    wide = [r for r in rules if r.get("source") == "0.0.0.0/0" and r["direction"] == "INGRESS"]
    assert not [
        r
        for r in wide
        if (r.get("tcpOptions") or r.get("udpOptions") or {}).get("destinationPortRange", {}).get("min")
        in (49100, 47998)
    ]


@pytest.mark.parametrize(
    ("streams", "line"),
    [
        (
            {"viewerCidrs": ["0.0.0.0/0"]},
            "simulation.streams.viewerCidrs[0]: 0.0.0.0/0 is wider than a /8, the internet in all but name, and "
            "Isaac Sim's livestream asks no credential: whoever connects watches and drives the scene; list your "
            "operators' networks, or set simulation.streams.allowWorldAccess: true to accept that",
        ),
        (
            {"viewerCidrs": ["198.51.100.0/24"], "addresses": ["192.0.2.7"]},
            "simulation.streams.addresses: is for an existing cluster; on OKE each instance gets a reserved IP",
        ),
        (
            {"viewerCidrs": ["198.51.100.0/24"], "viewerUrl": "javascript:alert(1)//{host}"},
            "simulation.streams.viewerUrl: javascript:alert(1)//{host} is not an https:// URL template with {host} "
            "(and optionally {signalPort}, {mediaPort}), such as https://viewer.example.com/?server={host}",
        ),
        (
            {"viewerUrl": "https://v.example/?server={host}&token={secret}"},
            "simulation.streams.viewerUrl: https://v.example/?server={host}&token={secret} is not an https:// URL "
            "template with {host} (and optionally {signalPort}, {mediaPort}), such as "
            "https://viewer.example.com/?server={host}",
        ),
    ],
    ids=["the world", "addresses on OKE", "a script URL", "an unknown field"],
)
def test_who_views_the_streams_is_one_line_when_wrong(streams: dict, line: str, tmp_path: Path, capsys) -> None:
    status, lines, everything, _ = run_plan(_dev(simulation={**FLEET, "streams": streams}), tmp_path, capsys)
    assert status == 2 and lines == [f"error: pixelstream:{line}"], everything[-2000:]


def test_the_world_only_by_choice_and_the_guard_and_policy_agree(tmp_path: Path) -> None:
    streams = {"viewerCidrs": ["0.0.0.0/0"], "allowWorldAccess": True, "viewerUrl": "https://v.example/?s={host}"}
    plan = plan_with(tmp_path, simulation={**FLEET, "streams": streams})
    stream = json.loads(
        {e["name"]: e.get("value") for e in containers(pod_specs(plan)["Deployment/sim-orchestrator"])[0]["env"]}[
            "STREAMS"
        ]
    )[0]
    assert stream["viewerUrl"] == f"https://v.example/?s={stream['host']}"
    from pixelstream.tools.policies import run_policies

    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    world = [v for v in run_policies(resources, plan.outputs) if v.policy == "no-world-open-ingress"]
    assert len(world) == 2, "the policy without the stack's allowWorldViewers refuses both ports"
    config = {"no-world-open-ingress": {"allowWorldViewers": True}}
    assert not [v for v in run_policies(resources, plan.outputs, config) if v.policy == "no-world-open-ingress"]


def test_instance_pods_get_stream_pod_addresses_the_relay_may_reach(sim: Plan) -> None:
    """The GPU pool's pods take addresses from the streams subnet; coturn allows exactly that subnet."""
    [gpu] = [r for r in sim.of_type("oci:ContainerEngine/nodePool:NodePool") if r.name == "gpu"]
    pod_network = gpu.inputs["nodeConfigDetails"]["nodePoolPodNetworkOptionDetails"]
    assert pod_network["podSubnetIds"] == ["ocid1.subnet.offline..pixelstream-sim-streams-subnet"]
    turnserver = manifest(sim, "configmap", "coturn", "pixel")["data"]["turnserver.conf"]
    assert "allowed-peer-ip=10.0.192.0-10.0.223.255" in turnserver


@pulumi.runtime.test
async def test_the_generated_credentials_and_the_ngc_login_are_secrets(pulumi_runtime) -> None:
    from pixelstream.workloads.simulation.component import Simulation, SimulationArgs

    workload = Simulation(
        "simulation",
        SimulationArgs(
            isaac_sim_image=IMAGES["isaacsim"],
            python_image=IMAGES["python"],
            private_cidrs=["10.0.0.0/16"],
            turn_node_cidrs=["10.0.30.0/24"],
            relay_ports=(49152, 65535),
            ngc_api_key="nvapi-x",
        ),
    )
    assert await workload.username.is_secret() and await workload.password.is_secret()
    assert await workload.username.future() == "operator"
    assert workload.url == "http://<ingress-load-balancer-ip>/sim/"


def test_basic_auth_without_tls_is_refused_in_one_line_naming_the_key(tmp_path: Path, capsys) -> None:
    without_host = {**FLEET, "ingress": {"pathPrefix": "/fleet"}}
    status, lines, everything, _ = run_plan(_dev(simulation=without_host), tmp_path, capsys)
    assert status == 2 and lines == [
        "error: pixelstream:simulation.ingress.host: is not set, so the fleet's dashboard would take the basic-auth "
        "password over plain HTTP; set a host with addons.certManager on (TLS), or on a development stack accept "
        "plain HTTP with simulation.ingress.allowPlainHttp: true"
    ], everything[-2000:]
    assert not (tmp_path / "fuzz").exists(), "refused before anything"


def test_plain_http_only_by_choice_and_every_plan_says_so(tmp_path: Path, capsys) -> None:
    plain = {**FLEET, "ingress": {"allowPlainHttp": True}}
    status, _, everything, _ = run_plan(_dev(simulation=plain), tmp_path, capsys)
    assert status == 0, everything[-2000:]
    assert "warning: the simulation dashboard takes the basic-auth password over plain HTTP" in everything
    outputs = json.loads((tmp_path / "fuzz" / "outputs.json").read_text())
    assert outputs["simulationUrl"] == "http://<ingress-load-balancer-ip>/sim/"
    ingress = yaml.safe_load((tmp_path / "fuzz" / "manifests" / "sim.ingress.simulation.yaml").read_text())
    assert "nginx.ingress.kubernetes.io/force-ssl-redirect" not in ingress["metadata"]["annotations"]
    status, _, everything, _ = run_plan(_dev(simulation=FLEET), tmp_path, capsys)
    assert status == 0 and "over plain HTTP" not in everything, everything[-2000:]


def test_a_fleet_without_the_streaming_workload_is_told_it_has_no_relay(tmp_path: Path, capsys) -> None:
    status, _, everything, _ = run_plan(_dev(simulation=FLEET, streaming={"enabled": False}), tmp_path, capsys)
    assert status == 0, everything[-2000:]
    assert "warning: simulation.enabled without streaming.enabled: the TURN relay belongs to" in everything
    status, _, everything, _ = run_plan(_dev(simulation=FLEET), tmp_path, capsys)
    assert status == 0 and "without streaming.enabled" not in everything


# -- GPUs that fit Isaac Sim ---------------------------------------------------------------------------------

BELOW = (
    "less than the least of the datacenter GPUs Isaac Sim 6.0.1 lists (NVIDIA A40, 48 GB): large scenes may run out "
    "of GPU memory"
)
REMEDY = "use BM.GPU.L40S.4 with one instance per GPU, or accept the risk with simulation.allowGpuBelowMinimum: true"
WITHOUT_OPT_IN = {k: v for k, v in FLEET.items() if k != "allowGpuBelowMinimum"}


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            {"simulation": WITHOUT_OPT_IN},
            f"nodePools.gpu.shape: each instance gets 24 GB of an NVIDIA A10 (24 GB), {BELOW}; {REMEDY}",
        ),
        (
            {
                "nodePools": {"gpu": {"shape": "BM.GPU.L40S.4", "size": 1}},
                "addons": {"gpuPlugin": {"streamsPerGpu": 2}},
                "streaming": {"streamer": {"gpuMode": "timeSliced"}},
                "simulation": {**WITHOUT_OPT_IN, "instancesPerGpu": 2},
            },
            "simulation.instancesPerGpu: each instance gets 24 GB of an NVIDIA L40S (48 GB shared by 2 instances), "
            f"{BELOW}; {REMEDY}",
        ),
        (
            {"nodePools": {"gpu": {"shape": "VM.GPU3.1", "size": 1}}, "simulation": FLEET},
            "nodePools.gpu.shape: VM.GPU3.1 (Tesla V100) has no ray-tracing cores (RTX), which Isaac Sim needs to "
            "render and stream; use VM.GPU.A10.1, VM.GPU.A10.2, BM.GPU.A10.4, BM.GPU.L40S.4",
        ),
        (
            {"nodePools": {"gpu": {"shape": "BM.GPU.L40S.4", "size": 1}}, "simulation": FLEET},
            "simulation.allowGpuBelowMinimum: true only applies below Isaac Sim's minimum; each instance here gets "
            "BM.GPU.L40S.4's whole 48 GB GPU",
        ),
        (
            {"simulation": {**FLEET, "cacheGbs": 49}},
            "simulation.cacheGbs: 49 is outside 50-32768 GB (an OCI block volume's sizes)",
        ),
    ],
    ids=["an A10", "a shared L40S", "no RT cores, even opted in", "an opt-in with nothing to allow", "a small cache"],
)
def test_a_gpu_below_isaac_sims_needs_is_one_line(config: dict, line: str, tmp_path: Path, capsys) -> None:
    status, lines, everything, _ = run_plan(_dev(**config), tmp_path, capsys)
    assert status == 2 and lines == [f"error: pixelstream:{line}"], everything[-2000:]


def test_below_the_minimum_only_by_choice_and_every_plan_says_so(sim: Plan, tmp_path: Path, capsys) -> None:
    status, _, everything, _ = run_plan(_dev(simulation=FLEET), tmp_path, capsys)
    assert status == 0, everything[-2000:]
    assert f"warning: simulation.allowGpuBelowMinimum: each instance gets 24 GB of an NVIDIA A10 (24 GB), {BELOW}" in (
        everything
    )
    [gpu] = [r for r in sim.of_type("oci:ContainerEngine/nodePool:NodePool") if r.name == "gpu"]
    assert gpu.inputs["nodeShape"] == "BM.GPU.L40S.4", "the sim stack fits: an L40S, 48 GB, per instance"


def test_an_existing_clusters_gpus_are_not_judged_and_the_opt_in_is_refused(tmp_path: Path, capsys) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.onprem.yaml").read_text())
    fleet = {**FLEET, "ingress": {"host": "sim.example.com"}}
    document["config"]["pixelstream:simulation"] = fleet
    status, lines, _, _ = run_plan(yaml.safe_dump(document), tmp_path, capsys)
    assert status == 2 and lines == [
        "error: pixelstream:simulation.allowGpuBelowMinimum: true only applies on OKE, where the stack knows the GPU "
        "pool's shape; size an existing cluster's GPUs by Isaac Sim's minimum (48 GB each) yourself"
    ]
    without = {k: v for k, v in fleet.items() if k != "allowGpuBelowMinimum"}
    document["config"]["pixelstream:simulation"] = without
    document["config"]["pixelstream:addons"] |= {"ingressNginx": {"enabled": True}, "certManager": {"enabled": True}}
    status, _, everything, _ = run_plan(yaml.safe_dump(document), tmp_path, capsys)
    assert status == 0, everything[-2000:]


# -- warm restarts -----------------------------------------------------------------------------------------

CACHES = {
    "/isaac-sim/.cache": "cache",
    "/isaac-sim/.nv/ComputeCache": "computecache",
    "/isaac-sim/.local/share/ov/data": "data",
    "/isaac-sim/.local/share/ov/pkg": "pkg",
}


def test_each_instance_keeps_its_caches_on_a_block_volume_of_its_own(sim: Plan) -> None:
    for index in range(3):
        spec = statefulset(sim, index)["spec"]
        [claim] = spec["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "cache"
        assert claim["spec"] == {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "50Gi"}},
            "storageClassName": "oci-bv",
        }
        assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        assert spec["template"]["spec"]["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
        pod = spec["template"]["spec"]
        [container] = pod["containers"]
        mounted = {m["mountPath"]: m.get("subPath") for m in container["volumeMounts"] if m["name"] == "cache"}
        assert mounted == CACHES, "NVIDIA's container mounts at 6.0.1, not the logs"
        [init] = pod["initContainers"]
        assert init["image"] == container["image"], "no second image to pull"
        assert init["securityContext"]["runAsUser"] == 1234, "the directories belong to Kit's user"
        made = {arg.rsplit("/", 1)[1] for arg in init["command"][2:]}
        assert init["command"][:2] == ["mkdir", "-p"] and made == set(CACHES.values())
        assert all(m["name"] != "cache" or "subPath" not in m for m in init["volumeMounts"])


def test_a_viewer_leaving_does_not_restart_the_instance_unless_asked(sim: Plan, tmp_path: Path) -> None:
    [container] = statefulset(sim, 0)["spec"]["template"]["spec"]["containers"]
    assert "--/exts/omni.services.livestream.session/quitOnSessionEnded=false" in container["args"]
    plan = plan_with(tmp_path, simulation={**FLEET, "quitWhenViewerLeaves": True, "cacheGbs": 200}, addons={})
    [container] = statefulset(plan, 0)["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if "quitOnSessionEnded" in a], "Kit's own default: quit"
    assert statefulset(plan, 0)["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "200Gi"
    }
