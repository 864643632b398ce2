"""The AI worker pool: go-livepeer remote workers on the GPU nodes that dial out to an orchestrator, their runners,
the shared secret, the orchestrator per mode, and every invalid setting as one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import ROOT, documentation, free_port
from test_addons import plan_with, stack_with
from test_config import invalid_raw
from tools import require

from pixelstream.config import ConfigError, StackConfig
from pixelstream.tools.checks import validate_manifests
from pixelstream.tools.offline import OFFLINE_PASSWORD_PREFIX, SECRET_PLACEHOLDER, Plan, main, plan_stack
from pixelstream.tools.policies import policy_config, run_policies_on_build
from pixelstream.workloads.ai_workers.livepeer import SECRET_FILE, livepeer_status_probe
from pixelstream.workloads.ai_workers.pool import DOCKER_API_SOCKET, MODELS_FILE, runner_health_probe
from pixelstream.workloads.images import AI_WORKER_IMAGES

NS = "ai"
APP = ROOT / "components" / "workloads" / "ai_workers" / "app"
sys.path.insert(0, str(APP))

import docker_api_stand_in  # noqa: E402

MODEL = {"pipeline": "text-to-image", "modelId": "ByteDance/SDXL-Lightning"}
SECRET = "an-external-orchestrator-secret"
# As the program reads it (decrypted), and as a stack file holds it (encrypted).
EXTERNAL = {"mode": "external", "address": "orch.example.net:8935", "secret": SECRET}
EXTERNAL_IN_FILE = {**EXTERNAL, "secret": {"secure": "v1:orchestrator-secret"}}
PUBLISHED = {"host": "ai.example.com", "gatewayCidrs": ["203.0.113.0/24"]}
# The orchestrator's Ingresses: each one path and its backend protocol.
ROUTES = {
    "ai-orchestrator-gateways-grpc": ("/net.Orchestrator", "GRPCS"),
    "ai-orchestrator-gateways": ("/", "HTTPS"),
    "ai-orchestrator-workers-grpc": ("/net.AIWorker", "GRPCS"),
    "ai-orchestrator-workers": ("/aiResults", "HTTPS"),
    "ai-orchestrator-files": ("/stream", "HTTPS"),
}


@pytest.fixture(scope="module")
def ai() -> Plan:
    return plan_stack("ai", ROOT)[0]


def manifest(plan: Plan, kind: str, name: str) -> dict:
    return plan.manifests()[f"{NS}.{kind}.{name}.yaml"]


def worker_pod(plan: Plan) -> dict:
    return manifest(plan, "deployment", "ai-worker")["spec"]["template"]


def by_name(containers: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in containers}


def mounted_file(spec: dict, container: dict, path: str) -> tuple[dict, str]:
    """The volume holding `path` in `container`, and the file name inside it."""
    directory, file_name = path.rsplit("/", 1)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return volume, file_name


# -- the committed stack -------------------------------------------------------------------------------------


def test_workers_run_on_gpu_nodes_with_their_runners_holding_the_gpus(ai: Plan) -> None:
    spec = worker_pod(ai)["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/gpu", "operator": "In", "values": ["true"]}]}]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert manifest(ai, "deployment", "ai-worker")["spec"]["replicas"] == 2
    init = by_name(spec["initContainers"])
    assert list(init) == ["docker-api-stand-in", "weights-0", "runner-0"], "the stand-in first: the worker calls it"
    sidecars = {name: c for name, c in init.items() if name != "weights-0"}
    assert all(c["restartPolicy"] == "Always" for c in sidecars.values()), "sidecars, running beside the worker"
    assert "restartPolicy" not in init["weights-0"], "done before the runners start"
    runner = sidecars["runner-0"]
    assert runner["image"] == AI_WORKER_IMAGES["ai-runner"]
    assert runner["resources"]["requests"]["nvidia.com/gpu"] == runner["resources"]["limits"]["nvidia.com/gpu"] == "1"
    [worker] = spec["containers"]
    gpu_holders = [c["name"] for c in [*spec["initContainers"], worker] if "nvidia.com/gpu" in c["resources"]["limits"]]
    assert gpu_holders == ["weights-0", "runner-0"], "only the runner, and before it its download, hold a GPU"
    assert worker["image"] == AI_WORKER_IMAGES["livepeer"]
    env = {e["name"]: e["value"] for e in runner["env"]}
    assert (env["PIPELINE"], env["MODEL_ID"]) == ("text-to-image", "ByteDance/SDXL-Lightning")
    assert runner["args"][-4:] == ["--host", "127.0.0.1", "--port", "8000"]


def test_the_worker_dials_the_orchestrator_with_the_secret_file_and_the_models_file(ai: Plan) -> None:
    spec = worker_pod(ai)["spec"]
    [worker] = spec["containers"]
    assert worker["args"] == [
        "-aiWorker",
        "-orchAddr=ai-orchestrator.ai.svc.cluster.local:8935",
        f"-orchSecret={SECRET_FILE}",
        f"-aiModels={MODELS_FILE}",
        "-dataDir=/data",
        "-cliAddr=127.0.0.1:4935",
    ]
    # -orchSecret takes a missing file's path as the secret itself: the flag must name the mounted file.
    volume, file_name = mounted_file(spec, worker, SECRET_FILE)
    assert volume["secret"]["secretName"] == "ai-orchestrator-secret"
    assert volume["secret"]["items"] == [{"key": "secret", "path": file_name}]
    assert volume["secret"]["defaultMode"] == 0o440 and spec["securityContext"]["fsGroup"] == 10001
    assert manifest(ai, "secret", "ai-orchestrator-secret")["stringData"] == {"secret": "[secret]"}
    volume, file_name = mounted_file(spec, worker, MODELS_FILE)
    models = json.loads(manifest(ai, "configmap", volume["configMap"]["name"])["data"][file_name])
    assert models == [
        {
            "pipeline": "text-to-image",
            "model_id": "ByteDance/SDXL-Lightning",
            "url": "http://127.0.0.1:8000",
            "warm": True,
            "capacity": 1,
        }
    ]


def test_workers_accept_no_traffic(ai: Plan) -> None:
    template = worker_pod(ai)
    pod_labels = template["metadata"]["labels"]
    services = [obj for obj in ai.manifests().values() if obj["kind"] == "Service"]
    assert services, "the orchestrator has one"
    for service in services:
        selector = service["spec"].get("selector", {})
        assert not (selector and selector.items() <= pod_labels.items()), service["metadata"]["name"]
    spec = template["spec"]
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert "ports" not in container, f"{container['name']} publishes a port"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                assert set(container[probe]) & {"httpGet", "tcpSocket", "grpc"} == set(), "probes run in the pod"


def test_no_docker_socket_no_privilege_no_token(ai: Plan) -> None:
    spec = worker_pod(ai)["spec"]
    assert spec["automountServiceAccountToken"] is False
    paths = [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v]
    assert paths == ["/var/lib/pixelstream/ai-models"], "the weights only"
    containers = by_name([*spec["initContainers"], *spec["containers"]])
    for name, container in containers.items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}, name
        assert "privileged" not in context, name
        if not name.startswith(("runner-", "weights-")):  # the runner image runs its Python from /root
            assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True, name
    # The worker's Docker API is the stand-in's socket, on a volume only the two share.
    env = {e["name"]: e["value"] for e in containers["worker"]["env"]}
    assert env["DOCKER_HOST"] == f"unix://{DOCKER_API_SOCKET}"
    stand_in = containers["docker-api-stand-in"]
    assert {e["name"]: e["value"] for e in stand_in["env"]} == {"DOCKER_API_SOCKET": DOCKER_API_SOCKET}
    sharing = {n for n, c in containers.items() for m in c["volumeMounts"] if m["name"] == "docker-api"}
    assert sharing == {"worker", "docker-api-stand-in"}
    [volume] = [v for v in spec["volumes"] if v["name"] == "docker-api"]
    assert "emptyDir" in volume


def test_the_secret_is_generated_and_stays_secret(ai: Plan, tmp_path: Path) -> None:
    password = ai.named("random:index/randomPassword:RandomPassword", "ai-workers-orchestrator-secret")
    assert password.inputs["length"] == 48
    assert ai.outputs["aiOrchestratorSecret"] == "[secret]"
    ai.write(tmp_path / "ai")
    written = "".join(p.read_text() for p in (tmp_path / "ai").rglob("*") if p.is_file())
    assert OFFLINE_PASSWORD_PREFIX not in written


def test_the_in_cluster_orchestrator_behind_the_ingress_with_tls(ai: Plan) -> None:
    deployment = manifest(ai, "deployment", "ai-orchestrator")["spec"]
    assert (deployment["replicas"], deployment["strategy"]) == (1, {"type": "Recreate"})
    [container] = deployment["template"]["spec"]["containers"]
    assert container["args"][:4] == [
        "-orchestrator",
        "-network=offchain",
        f"-orchSecret={SECRET_FILE}",
        "-serviceAddr=ai.example.com:443",
    ]
    assert container["ports"] == [{"name": "https", "containerPort": 8935}]
    volume, _ = mounted_file(deployment["template"]["spec"], container, SECRET_FILE)
    worker_spec = worker_pod(ai)["spec"]
    worker_volume, _ = mounted_file(worker_spec, worker_spec["containers"][0], SECRET_FILE)
    assert volume == worker_volume, "both ends read the one Secret"
    service = manifest(ai, "service", "ai-orchestrator")["spec"]
    assert service["ports"] == [{"name": "https", "port": 8935, "targetPort": "https"}]
    assert "type" not in service, "no load balancer of its own: the ingress publishes it"
    ingresses = {name: manifest(ai, "ingress", name) for name in ROUTES}
    for name, ingress in ingresses.items():
        annotations = ingress["metadata"]["annotations"]
        [path] = ingress["spec"]["rules"][0]["http"]["paths"]
        assert (path["path"], annotations["nginx.ingress.kubernetes.io/backend-protocol"]) == ROUTES[name]
        assert ingress["spec"]["tls"] == [{"hosts": ["ai.example.com"], "secretName": "ai-orchestrator-tls"}]
        assert ingress["spec"]["rules"][0]["host"] == "ai.example.com"
    unused = manifest(ai, "ingress", "ai-orchestrator-unused")
    paths = [p["path"] for p in unused["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/capability", "/transcodeResults", "/runners", "/runner"]
    assert unused["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"
    issuers = {n: i["metadata"]["annotations"].get("cert-manager.io/cluster-issuer") for n, i in ingresses.items()}
    assert issuers == {n: "letsencrypt-prod" if n == "ai-orchestrator-files" else None for n in ROUTES}, "one request"
    controller = ai.named("kubernetes:helm.sh/v3:Release", "ingress-nginx").urn
    assert controller in ai.named("kubernetes:networking.k8s.io/v1:Ingress", "ai-orchestrator-files").dependencies
    assert ai.outputs["aiOrchestratorAddress"] == "ai.example.com:443"


def test_only_the_ingress_and_the_workers_reach_the_orchestrator_and_workers_reach_no_private_network(
    ai: Plan,
) -> None:
    policies = {m["metadata"]["name"]: m["spec"] for m in ai.manifests().values() if m["kind"] == "NetworkPolicy"}
    policies = {name: spec for name, spec in policies.items() if name.startswith(("default-deny", "ai-"))}
    assert set(policies) == {"default-deny-ingress", "ai-orchestrator-callers", "ai-worker-egress"}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    callers = policies["ai-orchestrator-callers"]
    orchestrator_pod = manifest(ai, "deployment", "ai-orchestrator")["spec"]["template"]
    assert callers["podSelector"] == {"matchLabels": orchestrator_pod["metadata"]["labels"]}
    [rule] = callers["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8935}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"podSelector": {"matchLabels": worker_pod(ai)["metadata"]["labels"]}},
    ]
    egress = policies["ai-worker-egress"]
    assert egress["podSelector"] == {"matchLabels": worker_pod(ai)["metadata"]["labels"]}
    dns, orchestrator, internet = egress["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert orchestrator["ports"] == [{"protocol": "TCP", "port": 8935}]
    block = internet["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert "169.254.0.0/16" in block["except"], "not the node's metadata service"
    assert "10.0.0.0/16" in block["except"], "not the VCN (nodes, pods, the API endpoint)"
    assert "ports" not in internet, "any port outside: Hugging Face, the orchestrator's public host"


def test_workers_of_an_orchestrator_elsewhere_reach_any_address_but_the_metadata_service(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "ai", aiWorkers={"orchestrator": {"host": None, "gatewayCidrs": [], **EXTERNAL_IN_FILE}})
    policies = {m["metadata"]["name"]: m["spec"] for m in plan.manifests().values() if m["kind"] == "NetworkPolicy"}
    assert "ai-orchestrator-callers" not in policies
    _dns, internet = policies["ai-worker-egress"]["egress"]
    assert internet["to"][0]["ipBlock"]["except"] == ["169.254.0.0/16"]


def test_the_gpu_pool_follows_the_workers(ai: Plan) -> None:
    assert ai.outputs["autoscalerNodes"] == {"gpu": "1:3:ocid1.nodepool.offline..gpu"}
    addons = [r.inputs["addonName"] for r in ai.of_type("oci:ContainerEngine/addon:Addon")]
    assert "ClusterAutoscaler" in addons
    gpu_pool = ai.named("oci:ContainerEngine/nodePool:NodePool", "gpu").urn
    plugin = ai.named("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").urn
    assert {gpu_pool, plugin} <= set(ai.named("kubernetes:apps/v1:Deployment", "ai-worker").dependencies)


def test_the_ai_stack_passes_the_schemas_and_policies(ai: Plan, tmp_path: Path) -> None:
    ai.write(tmp_path / "ai")
    problems, _ = validate_manifests(tmp_path / "ai", "1.34.2")
    assert problems == []
    settings = policy_config(StackConfig.from_stack_file(ROOT / "stacks" / "Pulumi.ai.yaml"))
    assert run_policies_on_build(tmp_path / "ai", settings) == []


def test_dev_and_prod_run_no_ai_workers() -> None:
    for stack in ("dev", "prod"):
        plan = plan_stack(stack, ROOT)[0]
        assert not [r for r in plan.resources if r.type.startswith("pixelstream:index:Ai")]
        assert not [key for key in plan.outputs if key.startswith("ai")]


# -- other settings ------------------------------------------------------------------------------------------


def test_an_external_orchestrator(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "ai", aiWorkers={"orchestrator": {"host": None, "gatewayCidrs": [], **EXTERNAL_IN_FILE}})
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in plan.manifests().values()}
    assert not [k for k in kinds if k[1].startswith("ai-orchestrator") and k[0] != "Secret"], kinds
    assert not [r for r in plan.of_type("random:index/randomPassword:RandomPassword") if "orchestrator" in r.name]
    [worker] = worker_pod(plan)["spec"]["containers"]
    assert "-orchAddr=orch.example.net:8935" in worker["args"]
    assert manifest(plan, "secret", "ai-orchestrator-secret")["stringData"] == {"secret": "[secret]"}
    assert plan.outputs["aiOrchestratorAddress"] == "orch.example.net:8935"
    assert "aiOrchestratorSecret" not in plan.outputs, "you hold that orchestrator's secret"


def test_an_orchestrator_secret_in_plain_text_is_refused_without_repeating_it(tmp_path: Path, capsys) -> None:
    stack_file = stack_with(tmp_path, "ai", aiWorkers={"orchestrator": {**EXTERNAL, "host": None, "gatewayCidrs": []}})
    args = ["--stack", "ai", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    assert main(args) == 2
    printed = capsys.readouterr()
    assert printed.err.strip().splitlines() == [
        "error: pixelstream:aiWorkers.orchestrator.secret: is plain text in the stack file; store it encrypted: "
        "pulumi config set --secret --path aiWorkers.orchestrator.secret <value>"
    ]
    assert SECRET not in printed.out + printed.err


def test_a_secure_secret_from_the_stack_file_never_reaches_the_build(tmp_path: Path, capsys) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.ai.yaml").read_text())
    document["config"]["pixelstream:aiWorkers"]["orchestrator"] = {
        "mode": "external",
        "address": "orch.example.net:8935",
        "secret": {"secure": "v1:ciphertext"},
    }
    stack_file = tmp_path / "Pulumi.secure.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    args = ["--stack", "secure", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "note: pixelstream:aiWorkers.orchestrator.secret is encrypted" in printed
    written = "".join(p.read_text() for p in (tmp_path / "secure").rglob("*") if p.is_file())
    assert SECRET_PLACEHOLDER not in written + printed
    secret = yaml.safe_load((tmp_path / "secure" / "manifests" / "ai.secret.ai-orchestrator-secret.yaml").read_text())
    assert secret["stringData"] == {"secret": "[secret]"}


def test_an_orchestrator_kept_inside_the_cluster(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "ai", aiWorkers={"orchestrator": {"host": None, "gatewayCidrs": []}})
    assert not [name for name in plan.manifests() if ".ingress." in name and name.startswith("ai.")]
    [container] = manifest(plan, "deployment", "ai-orchestrator")["spec"]["template"]["spec"]["containers"]
    assert "-serviceAddr=ai-orchestrator.ai.svc.cluster.local:8935" in container["args"]
    assert plan.outputs["aiOrchestratorAddress"] == "ai-orchestrator.ai.svc.cluster.local:8935"


def test_two_models_on_a_two_gpu_shape_with_a_block_volume_and_no_downloads(tmp_path: Path) -> None:
    custom = "registry.example/runners/upscale@sha256:" + "c" * 64
    stack_file = stack_with(
        tmp_path,
        "ai",
        nodePools={"gpu": {"shape": "VM.GPU.A10.2"}},
        aiWorkers={
            "replicas": 1,
            "images": {"my-upscaler": custom, "livepeer": "registry.example/livepeer:v0.9.1"},
            "models": [
                {"pipeline": "llm", "modelId": "meta-llama/Meta-Llama-3.1-8B-Instruct"},
                {"pipeline": "upscale", "modelId": "stabilityai/stable-diffusion-x4-upscaler", "image": "my-upscaler"},
            ],
            "weights": {"volume": "blockVolume", "sizeGbs": 300, "download": False},
        },
    )
    document = yaml.safe_load(stack_file.read_text())
    del document["config"]["pixelstream:aiWorkers"]["weights"]["path"]  # the ai stack's, for its hostPath
    stack_file.write_text(yaml.safe_dump(document))
    plan = plan_stack("ai", ROOT, stack_file)[0]
    spec = worker_pod(plan)["spec"]
    runners = [c for c in spec["initContainers"] if c["name"].startswith("runner-")]
    assert [r["image"] for r in runners] == [AI_WORKER_IMAGES["ai-runner-llm"], custom]
    assert [r["args"][-1] for r in runners] == ["8000", "8001"]
    models = json.loads(manifest(plan, "configmap", "ai-worker-models")["data"]["aiModels.json"])
    assert [m["url"] for m in models] == ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    assert all({"name": "HF_HUB_OFFLINE", "value": "1"} in r["env"] for r in runners)
    assert not [c for c in spec["initContainers"] if c["name"].startswith("weights-")], "nothing downloads"
    claim = manifest(plan, "persistentvolumeclaim", "ai-worker-weights")["spec"]
    assert claim == {
        "storageClassName": "oci-bv",
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "300Gi"}},
    }
    [weights] = [v for v in spec["volumes"] if v["name"] == "weights"]
    assert weights == {"name": "weights", "persistentVolumeClaim": {"claimName": "ai-worker-weights"}}
    # The orchestrator refuses workers older than itself: both run the one livepeer image.
    [orchestrator] = manifest(plan, "deployment", "ai-orchestrator")["spec"]["template"]["spec"]["containers"]
    assert orchestrator["image"] == spec["containers"][0]["image"] == "registry.example/livepeer:v0.9.1"


# -- invalid settings ----------------------------------------------------------------------------------------

STREAMING_OFF = {"enabled": False}
# (case, aiWorkers keys, other top-level keys, the key the line names, words it must contain)
INVALID: list[tuple[str, dict[str, Any], dict[str, Any], str, list[str]]] = [
    ("no models", {"models": []}, {}, "aiWorkers.models", ["at least one"]),
    (
        "unknown pipeline",
        {"models": [{**MODEL, "pipeline": "text-to-3d"}]},
        {},
        "aiWorkers.models[0].pipeline",
        ["text-to-3d", "text-to-image", "segment-anything-2"],
    ),
    (
        "a live pipeline",
        {"models": [{**MODEL, "pipeline": "live-video-to-video"}]},
        {},
        "aiWorkers.models[0].pipeline",
        ["live video does not use remote workers"],
    ),
    (
        "model without a runner image",
        {"models": [{**MODEL, "image": "my-runner"}]},
        {},
        "aiWorkers.models[0].image",
        ["my-runner is not a runner image", "aiWorkers.images.my-runner", "ai-runner-llm"],
    ),
    (
        "go-livepeer as a runner",
        {"models": [{**MODEL, "image": "livepeer"}]},
        {},
        "aiWorkers.models[0].image",
        ["livepeer is not a runner image"],
    ),
    ("model id with spaces", {"models": [{**MODEL, "modelId": "my model"}]}, {}, "aiWorkers.models[0].modelId", []),
    (
        "GPUs above the shape's",
        {"models": [{**MODEL, "gpus": 2}]},
        {},
        "aiWorkers.models[0].gpus",
        ["2 GPUs in one worker pod", "VM.GPU.A10.1", "has 1"],
    ),
    (
        "two runners on a one-GPU shape",
        {"models": [MODEL, {"pipeline": "upscale", "modelId": "stabilityai/stable-diffusion-x4-upscaler"}]},
        {},
        "aiWorkers.models[1].gpus",
        ["2 GPUs"],
    ),
    ("zero GPUs", {"models": [{**MODEL, "gpus": 0}]}, {}, "aiWorkers.models[0].gpus", ["below 1"]),
    (
        "time-sliced GPUs",
        {"models": [MODEL]},
        {"addons": {"gpuPlugin": {"streamsPerGpu": 2}}, "streaming": STREAMING_OFF},
        "aiWorkers.enabled",
        ["whole GPUs", "streamsPerGpu is 2"],
    ),
    (
        "external without an address",
        {"orchestrator": {"mode": "external", "secret": SECRET}},
        {},
        "aiWorkers.orchestrator.address",
        ["required with mode: external"],
    ),
    (
        "external without a secret",
        {"orchestrator": {"mode": "external", "address": "orch.example.net:8935"}},
        {},
        "aiWorkers.orchestrator.secret",
        ["required with mode: external", "pulumi config set --secret"],
    ),
    (
        "external address without a port",
        {"orchestrator": {**EXTERNAL, "address": "orch.example.net"}},
        {},
        "aiWorkers.orchestrator.address",
        ["is not host:port"],
    ),
    (
        "external address port out of range",
        {"orchestrator": {**EXTERNAL, "address": "orch.example.net:99999"}},
        {},
        "aiWorkers.orchestrator.address",
        ["99999"],
    ),
    (
        "a host for an external orchestrator",
        {"orchestrator": {**EXTERNAL, "host": "ai.example.com"}},
        {},
        "aiWorkers.orchestrator.host",
        ["mode: inCluster"],
    ),
    (
        "an address for the in-cluster orchestrator",
        {"orchestrator": {"address": "orch.example.net:8935"}},
        {},
        "aiWorkers.orchestrator.address",
        ["mode: external"],
    ),
    (
        "a host without cert-manager",
        {"orchestrator": PUBLISHED},
        {"addons": {"certManager": {"enabled": False}}},
        "aiWorkers.orchestrator.host",
        ["addons.certManager"],
    ),
    (
        "the streaming host",
        {"orchestrator": {**PUBLISHED, "host": "play.example.com"}},
        {"streaming": {"ingress": {"host": "play.example.com"}}},
        "aiWorkers.orchestrator.host",
        ["streaming.ingress.host"],
    ),
    (
        "a published orchestrator without gateways",
        {"orchestrator": {"host": "ai.example.com"}},
        {},
        "aiWorkers.orchestrator.gatewayCidrs",
        ["is empty", "without payment"],
    ),
    (
        "gateways from the whole internet",
        {"orchestrator": {**PUBLISHED, "gatewayCidrs": ["0.0.0.0/0"]}},
        {},
        "aiWorkers.orchestrator.gatewayCidrs[0]",
        ["wider than a /8", "allowWorldAccess: true"],
    ),
    (
        "workers from half the internet",
        {"orchestrator": {**PUBLISHED, "workerCidrs": ["192.0.2.0/24", "0.0.0.0/1"]}},
        {},
        "aiWorkers.orchestrator.workerCidrs[1]",
        ["0.0.0.0/1 is wider than a /8"],
    ),
    (
        "a gateway network listed twice",
        {"orchestrator": {**PUBLISHED, "gatewayCidrs": ["203.0.113.0/24", "203.0.113.0/24"]}},
        {},
        "aiWorkers.orchestrator.gatewayCidrs[1]",
        ["listed twice"],
    ),
    (
        "a gateway address with host bits",
        {"orchestrator": {**PUBLISHED, "gatewayCidrs": ["203.0.113.7/24"]}},
        {},
        "aiWorkers.orchestrator.gatewayCidrs[0]",
        ["host bits set"],
    ),
    (
        "gateways without a host",
        {"orchestrator": {"gatewayCidrs": ["203.0.113.0/24"]}},
        {},
        "aiWorkers.orchestrator.gatewayCidrs",
        ["needs aiWorkers.orchestrator.host"],
    ),
    (
        "workers for an external orchestrator",
        {"orchestrator": {**EXTERNAL, "workerCidrs": ["192.0.2.0/24"]}},
        {},
        "aiWorkers.orchestrator.workerCidrs",
        ["mode: inCluster"],
    ),
    ("a bad host", {"orchestrator": {"host": "AI Host"}}, {}, "aiWorkers.orchestrator.host", ["not a DNS host"]),
    (
        "the streaming namespace",
        {"namespace": "pixel"},
        {},
        "aiWorkers.namespace",
        ["pixel is streaming.namespace too", "each workload needs its own"],
    ),
    ("an add-on's namespace", {"namespace": "monitoring"}, {}, "aiWorkers.namespace", ["belongs to"]),
    ("negative replicas", {"replicas": -1}, {}, "aiWorkers.replicas", ["-1 is outside"]),
    (
        "replicas sharing a block volume",
        {"replicas": 2},
        {},
        "aiWorkers.replicas",
        ["cannot share one block volume", "hostPath"],
    ),
    ("a tiny block volume", {"weights": {"sizeGbs": 10}}, {}, "aiWorkers.weights.sizeGbs", ["50-32768"]),
    ("a path for a block volume", {"weights": {"path": "/data/models"}}, {}, "aiWorkers.weights.path", ["hostPath"]),
    (
        "a size for a host path",
        {"weights": {"volume": "hostPath", "sizeGbs": 100}},
        {},
        "aiWorkers.weights.sizeGbs",
        ["blockVolume"],
    ),
    (
        "weights in /etc",
        {"weights": {"volume": "hostPath", "path": "/etc/models"}},
        {},
        "aiWorkers.weights.path",
        ["/etc/models is not a directory under /var/lib/pixelstream/", "such as /var/lib/pixelstream/ai-models"],
    ),
    (
        "weights in the kubelet's directory",
        {"weights": {"volume": "hostPath", "path": "/var/lib/kubelet/pods"}},
        {},
        "aiWorkers.weights.path",
        ["not a directory under /var/lib/pixelstream/"],
    ),
    (
        "weights climbing out of the prefix",
        {"weights": {"volume": "hostPath", "path": "/var/lib/pixelstream/../kubelet"}},
        {},
        "aiWorkers.weights.path",
        ["not a directory under"],
    ),
    (
        "weights beside the prefix",
        {"weights": {"volume": "hostPath", "path": "/var/lib/pixelstream-other/models"}},
        {},
        "aiWorkers.weights.path",
        ["not a directory under"],
    ),
    (
        "weights in the prefix itself",
        {"weights": {"volume": "hostPath", "path": "/var/lib/pixelstream/"}},
        {},
        "aiWorkers.weights.path",
        ["not a directory under"],
    ),
    (
        "weights in a relative path",
        {"weights": {"volume": "hostPath", "path": "models/here"}},
        {},
        "aiWorkers.weights.path",
        ["not a directory under"],
    ),
    (
        "an image nobody uses",
        {"images": {"my-runner": "registry.example/runner:1.0"}},
        {},
        "aiWorkers.images.my-runner",
        ["no model names it"],
    ),
    (
        "an unpinned image",
        {"images": {"livepeer": "livepeer/go-livepeer"}},
        {},
        "aiWorkers.images.livepeer",
        ["tag or digest"],
    ),
    ("runner cpu above its limit", {"runner": {"cpu": "16"}}, {}, "aiWorkers.runner.cpu", ["above the limit"]),
    (
        "a runner start-up of a second",
        {"runner": {"startupTimeoutSeconds": 1}},
        {},
        "aiWorkers.runner.startupTimeoutSeconds",
        ["60-7200"],
    ),
    ("a bad pull secret", {"imagePullSecrets": ["Not A Secret"]}, {}, "aiWorkers.imagePullSecrets[0]", []),
    (
        "more workers than the GPU pool holds",
        {"replicas": 4, "weights": {"volume": "hostPath"}},
        {"nodePools": {"gpu": {"size": 1, "maxSize": 3, "minSize": 1}}},
        "aiWorkers.replicas",
        ["4 do not fit the GPU pool, which holds at most 3", "VM.GPU.A10.1"],
    ),
    (
        "two-GPU workers, one per two-GPU node",
        {"replicas": 3, "weights": {"volume": "hostPath"}, "models": [{**MODEL, "gpus": 2}]},
        {"nodePools": {"gpu": {"shape": "VM.GPU.A10.2", "size": 2}}},
        "aiWorkers.replicas",
        ["holds at most 2"],
    ),
    ("an empty weights path", {"weights": {"volume": "hostPath", "path": ""}}, {}, "aiWorkers.weights.path", []),
    ("no weights volume", {"weights": {"sizeGbs": 0}}, {}, "aiWorkers.weights.sizeGbs", ["0 is outside 50-32768"]),
]


def ai_raw(workers: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    return invalid_raw({"aiWorkers": {"enabled": True, "models": [MODEL], **workers}, **others})


@pytest.mark.parametrize(("case", "workers", "others", "path", "words"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_settings_are_one_line_naming_the_key(case, workers, others, path, words) -> None:
    with pytest.raises(ConfigError) as caught:
        StackConfig.parse(ai_raw(workers, others))
    message = str(caught.value)
    assert message.startswith(f"pixelstream:{path}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_each_valid_variant_of_the_invalid_ones_parses() -> None:
    """The cases above fail for the reason they name: the same stack without it is valid."""
    StackConfig.parse(ai_raw({}, {}))
    StackConfig.parse(ai_raw({"orchestrator": EXTERNAL}, {}))
    three_nodes = {"nodePools": {"gpu": {"size": 1, "maxSize": 3, "minSize": 1}}}
    StackConfig.parse(ai_raw({"replicas": 3, "weights": {"volume": "hostPath"}}, three_nodes))
    two_gpu_nodes = {"nodePools": {"gpu": {"shape": "VM.GPU.A10.2", "size": 2}}}
    StackConfig.parse(
        ai_raw({"replicas": 2, "weights": {"volume": "hostPath"}, "models": [{**MODEL, "gpus": 2}]}, two_gpu_nodes)
    )
    StackConfig.parse(ai_raw({"models": [{**MODEL, "gpus": 2}]}, {"nodePools": {"gpu": {"shape": "VM.GPU.A10.2"}}}))
    StackConfig.parse(ai_raw({"orchestrator": PUBLISHED}, {}))
    deep = {"weights": {"volume": "hostPath", "path": "/var/lib/pixelstream/models/sdxl"}}
    StackConfig.parse(ai_raw(deep, {}))
    StackConfig.parse(ai_raw({"orchestrator": {**PUBLISHED, "gatewayCidrs": ["10.0.0.0/8"]}}, {}))
    world = {**PUBLISHED, "workerCidrs": ["0.0.0.0/0"], "allowWorldAccess": True}
    StackConfig.parse(ai_raw({"orchestrator": world}, {}))


def test_a_short_secret_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as caught:
        StackConfig.parse(ai_raw({"orchestrator": {**EXTERNAL, "secret": "hunter2"}}, {}))
    assert str(caught.value).startswith("pixelstream:aiWorkers.orchestrator.secret: needs at least 16")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("case", ["unknown pipeline", "GPUs above the shape's", "external without an address"])
def test_the_plan_fails_with_that_one_line(case: str, tmp_path: Path, capsys) -> None:
    _, workers, _, path, _ = next(c for c in INVALID if c[0] == case)
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.ai.yaml").read_text())
    if "secret" in workers.get("orchestrator", {}):  # as a stack file must hold it
        workers = {**workers, "orchestrator": {**workers["orchestrator"], "secret": {"secure": "v1:secret"}}}
    document["config"]["pixelstream:aiWorkers"].update(workers)
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    args = ["--stack", "bad", "--stack-file", str(stack_file), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: pixelstream:{path}: "), lines
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "bad").exists(), "nothing declared"


# -- the probes and the Docker API stand-in, run for real ------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    replies: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.replies.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[int, dict[str, tuple[int, bytes]]]]:
    replies: ClassVar[dict[str, tuple[int, bytes]]] = {}
    handler = type("Handler", (_Answer,), {"replies": replies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], replies
    server.shutdown()


def run_probe(probe: dict) -> int:
    return subprocess.run(probe["exec"]["command"], capture_output=True, timeout=10).returncode


def test_the_livepeer_status_probe_asks_the_cli_server(http_server) -> None:
    port, replies = http_server
    bash = shutil.which("bash")
    assert bash, "the probe runs in go-livepeer's image with its bash"
    probe = livepeer_status_probe(port, period=10)
    assert run_probe(probe) == 1, "no /status yet"
    replies["/status"] = (200, b'{"Manifests": {}}')
    assert run_probe(probe) == 0
    replies["/status"] = (500, b"")
    assert run_probe(probe) == 1
    assert run_probe(livepeer_status_probe(free_port(), period=10)) == 1, "nothing listening"


@pytest.mark.parametrize(("status", "healthy"), [("OK", True), ("IDLE", True), ("LOADING", True), ("ERROR", False)])
def test_the_runner_probe_passes_unless_the_runner_reports_an_error(http_server, status: str, healthy: bool) -> None:
    port, replies = http_server
    replies["/health"] = (200, json.dumps({"status": status}).encode())
    probe = runner_health_probe(port, period=10)
    probe["exec"]["command"][0] = sys.executable  # the runner image's python
    assert (run_probe(probe) == 0) is healthy


def test_runners_read_the_weights_and_only_the_download_before_them_writes(ai: Plan) -> None:
    spec = worker_pod(ai)["spec"]
    init = by_name(spec["initContainers"])
    runner, download = init["runner-0"], init["weights-0"]
    assert runner["volumeMounts"] == [{"name": "weights", "mountPath": "/models", "readOnly": True}]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in runner["env"], "a runner fetches nothing"
    writers = [
        c["name"]
        for c in [*spec["initContainers"], *spec["containers"]]
        for m in c["volumeMounts"]
        if m["name"] == "weights" and not m.get("readOnly")
    ]
    assert writers == ["weights-0"]
    # The download runs the runner's own server, with its image, model and GPUs, on the runner's port.
    assert (download["image"], download["resources"]) == (runner["image"], runner["resources"])
    assert [e for e in download["env"] if e["name"] != "HF_HUB_OFFLINE"] == download["env"]
    assert download["env"] == [e for e in runner["env"] if e["name"] != "HF_HUB_OFFLINE"]
    assert download["command"][1:] == ["/helpers/weights_preload.py", "8000", "1800", "--", *runner["args"]]
    assert download["securityContext"] == runner["securityContext"]


def _fake_runner(tmp_path: Path, port: int, behaviour: str) -> list[str]:
    """A stand-in runner server: answers /health after a second (`status` given), or exits, or never answers."""
    script = tmp_path / "runner.py"
    script.write_text(
        "import http.server, json, sys, time\n"
        f"behaviour = {behaviour!r}\n"
        "if behaviour == 'exit': sys.exit(3)\n"
        "time.sleep(1)\n"
        "if behaviour == 'silent': time.sleep(3600)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = json.dumps({'status': behaviour}).encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    return [sys.executable, str(script)]


@pytest.mark.parametrize(
    ("behaviour", "timeout", "code", "said"),
    [
        ("IDLE", 30, 0, "the model is loaded (runner status IDLE)"),
        ("OK", 30, 0, "the model is loaded (runner status OK)"),
        ("ERROR", 30, 1, "reports ERROR"),
        ("exit", 30, 1, "exited with 3 before its model loaded"),
        ("silent", 3, 1, "did not load its model within 3 s"),
    ],
)
def test_the_weights_download_ends_once_the_runner_has_loaded_its_model(
    tmp_path: Path, behaviour: str, timeout: int, code: int, said: str
) -> None:
    port = free_port()
    command = [sys.executable, str(APP / "weights_preload.py"), str(port), str(timeout), "--"]
    done = subprocess.run(
        [*command, *_fake_runner(tmp_path, port, behaviour)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, said in done.stdout) == (code, True), done.stdout + done.stderr
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the runner's server is stopped either way"


def test_the_runner_probe_fails_while_the_runner_does_not_answer() -> None:
    probe = runner_health_probe(free_port(), period=10)
    probe["exec"]["command"][0] = sys.executable
    assert run_probe(probe) == 1


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    server = docker_api_stand_in.serve(path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


def unix_request(path: str, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(path)
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def test_the_stand_in_answers_the_workers_start_up_requests(stand_in: str) -> None:
    assert oct(os.stat(stand_in).st_mode & 0o777) == "0o600"
    status, headers, body = unix_request(stand_in, "HEAD", "/_ping")
    assert (status, headers["Api-Version"], body) == (200, "1.41", b"")
    filters = "%7B%22label%22%3A%7B%22creator%3Dai-worker%22%3Atrue%7D%7D"
    status, _, body = unix_request(stand_in, "GET", f"/v1.41/containers/json?all=1&filters={filters}")
    assert (status, json.loads(body)) == (200, [])
    status, _, body = unix_request(stand_in, "GET", "/v1.41/images/livepeer/ai-runner:latest/json")
    assert status == 404 and "No such image" in json.loads(body)["message"]
    for method, target in (
        ("POST", "/v1.41/images/create?fromImage=livepeer%2Fai-runner&tag=latest"),
        ("POST", "/v1.41/containers/create?name=text-to-image"),
        ("POST", "/v1.41/containers/abc/start"),
        ("DELETE", "/v1.41/containers/abc?force=1"),
    ):
        status, _, body = unix_request(stand_in, method, target)
        assert status == 403 and "refused" in json.loads(body)["message"], target
    assert docker_api_stand_in.probe(stand_in) is True


def test_the_stand_in_probe_fails_without_a_stand_in(tmp_path: Path) -> None:
    assert docker_api_stand_in.probe(str(tmp_path / "nothing.sock")) is False
    result = subprocess.run(
        [sys.executable, str(APP / "docker_api_stand_in.py"), "--probe"],
        env={**os.environ, "DOCKER_API_SOCKET": str(tmp_path / "nothing.sock")},
        capture_output=True,
        timeout=10,
    )
    assert result.returncode == 1


def test_dockers_own_client_sees_no_containers_and_cannot_pull(stand_in: str) -> None:
    """Docker's CLI is built on the Go client go-livepeer uses: the same negotiation, list, inspect and pull."""
    docker = require("docker", "docker.io")
    env = {**os.environ, "DOCKER_HOST": f"unix://{stand_in}", "DOCKER_CONFIG": str(Path(stand_in).parent)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([docker, *args], env=env, capture_output=True, text=True, timeout=30)

    listed = run("ps", "--all", "--quiet", "--filter", "label=creator=ai-worker")
    assert (listed.returncode, listed.stdout) == (0, ""), listed.stderr
    inspected = run("image", "inspect", "livepeer/ai-runner:latest")
    assert inspected.returncode == 1 and "No such image" in inspected.stderr
    pulled = run("pull", "livepeer/ai-runner:latest")
    assert pulled.returncode != 0 and "refused by the Docker API stand-in" in pulled.stderr
    started = run("run", "--rm", "busybox")
    assert started.returncode != 0


# -- the documentation -------------------------------------------------------------------------------------


def test_the_documentation_holds_every_key() -> None:
    from pixelstream.tools.configref import rows
    from pixelstream.workloads.ai_workers.config import AiWorkersConfig

    readme = documentation()
    missing = [key for key, *_ in rows(AiWorkersConfig, "aiWorkers.") if f"`{key}`" not in readme]
    assert missing == []
