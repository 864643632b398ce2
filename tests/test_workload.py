"""The streaming workload's manifests: placement, autoscaling, probes, least privilege, secrets, images."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from conftest import OTHER_ADDRESS_PLAN, ROOT
from test_addons import plan_with

from pixelstream.tools.offline import OFFLINE_PASSWORD_PREFIX, Plan, plan_stack
from pixelstream.workloads.images import IMAGES

NS = "pixel"


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def manifest(plan: Plan, kind: str, name: str, namespace: str | None = NS) -> dict:
    prefix = f"{namespace}." if namespace else ""
    return plan.manifests()[f"{prefix}{kind}.{name}.yaml"]


def pod_specs(plan: Plan) -> dict[str, dict]:
    specs = {}
    for obj in plan.manifests().values():
        if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            specs[f"{obj['kind']}/{obj['metadata']['name']}"] = obj["spec"]["template"]["spec"]
    return specs


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_hpa_scales_streams_on_the_matchmaker_pool_ratio(dev: Plan) -> None:
    hpa = manifest(dev, "horizontalpodautoscaler", "stream-autoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"kind": "Deployment", "name": "stream", "apiVersion": "apps/v1"}
    assert hpa["metrics"] == [
        {
            "type": "Object",
            "object": {
                "metric": {"name": "player_stream_pool_ratio"},
                "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "matchmaker"},
                "target": {"type": "Value", "value": "0.9"},
            },
        }
    ]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 10)
    assert hpa["behavior"]["scaleUp"]["policies"] == [
        {"type": "Pods", "value": 2, "periodSeconds": 15},
        {"type": "Percent", "value": 10, "periodSeconds": 15},
    ]
    assert hpa["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 30}
    assert "replicas" not in manifest(dev, "deployment", "stream")["spec"], "the autoscaler owns the count"


def test_autoscaling_from_config(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        streaming={
            "autoscaling": {
                "minReplicas": 2,
                "maxReplicas": 40,
                "targetPoolRatio": 0.75,
                "scaleDown": {"stabilizationSeconds": 300},
            }
        },
    )
    hpa = manifest(plan, "horizontalpodautoscaler", "stream-autoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 40)
    assert hpa["metrics"][0]["object"]["target"]["value"] == "0.75"
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_matchmaker_service_is_scraped_for_the_service_label(dev: Plan) -> None:
    service = manifest(dev, "service", "matchmaker")
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9000"}
    matchmaker = manifest(dev, "deployment", "matchmaker")["spec"]
    assert matchmaker["replicas"] == 1 and matchmaker["strategy"] == {"type": "Recreate"}


def test_every_container_has_requests_and_limits(dev: Plan) -> None:
    for workload, spec in pod_specs(dev).items():
        for container in containers(spec):
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][section]), (
                    f"{workload}/{container['name']} {section}"
                )


def test_every_pod_runs_non_root_where_the_image_allows(dev: Plan, tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"podProxy": {"enabled": True}})
    for workload, spec in pod_specs(plan).items():
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, workload
            assert "ALL" in context["capabilities"]["drop"], workload
            if workload != "Deployment/podproxy":  # its image renders config as root at start
                assert context["runAsNonRoot"] is True, f"{workload}/{container['name']}"
    read_only = {
        f"{w}/{c['name']}"
        for w, s in pod_specs(plan).items()
        for c in containers(s)
        if c["securityContext"].get("readOnlyRootFilesystem")
    }
    assert {
        "DaemonSet/turn/coturn",
        "DaemonSet/turn/bootstrap",
        "Deployment/ice-config/ice-config",
        "Deployment/router/traefik",
    } <= read_only


def test_only_the_containers_that_call_the_api_hold_a_token(dev: Plan) -> None:
    holders = set()
    for workload, spec in pod_specs(dev).items():
        automount = spec.get("automountServiceAccountToken", True)
        for container in containers(spec):
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if automount or "/var/run/secrets/kubernetes.io/serviceaccount" in mounts:
                holders.add(f"{workload}/{container['name']}")
    assert holders == {
        "DaemonSet/turn/bootstrap",
        "Deployment/stream/deletion-cost",
        "Deployment/ice-config/ice-config",
    }


def test_no_cluster_role_can_patch_nodes_or_pods(dev: Plan) -> None:
    cluster_roles = [obj for obj in dev.manifests().values() if obj["kind"] == "ClusterRole"]
    assert cluster_roles, "the node readers exist"
    for role in cluster_roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
            assert rule["resources"] == ["nodes"]
    role = manifest(dev, "role", "stream-deletion-cost")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]
    for binding in (obj for obj in dev.manifests().values() if obj["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert all(subject["namespace"] == NS for subject in binding["subjects"]), (
            "service accounts live in the app namespace"
        )


def test_turn_daemonset_on_turn_nodes_with_host_network(dev: Plan) -> None:
    daemonset = manifest(dev, "daemonset", "turn")["spec"]["template"]
    spec = daemonset["spec"]
    assert spec["hostNetwork"] is True
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/turn", "operator": "In", "values": ["true"]}]}]
    assert spec["tolerations"] == [{"key": "app.pixel/turn", "operator": "Exists", "effect": "NoSchedule"}]
    assert daemonset["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9641"}
    [coturn] = spec["containers"]
    assert coturn["image"] == IMAGES["coturn"]
    assert {(p["containerPort"], p["protocol"]) for p in coturn["ports"]} >= {(3478, "UDP"), (3478, "TCP")}
    assert not spec.get("initContainers")[0]["image"].endswith(":latest")
    env = {e["name"]: e for e in spec["initContainers"][0]["env"]}
    assert env["TURN_SECRET_FILE"]["value"] == "/secrets/turn/static-auth-secret"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["turn-auth"]["secret"] == {"secretName": "turn-auth", "defaultMode": 0o440}
    assert "turn-auth" not in {m["name"] for m in coturn["volumeMounts"]}, "coturn reads only the rendered file"
    assert not [e for c in containers(spec) for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_turn_secret_is_generated_and_stays_secret(dev: Plan, tmp_path: Path) -> None:
    assert manifest(dev, "secret", "turn-auth")["stringData"] == {"static-auth-secret": "[secret]"}
    password = dev.named("random:index/randomPassword:RandomPassword", "pixel-streaming-turn-auth-secret")
    assert password.inputs["length"] == 48
    dev.write(tmp_path / "dev")
    written = "".join(p.read_text() for p in (tmp_path / "dev").rglob("*") if p.is_file())
    assert OFFLINE_PASSWORD_PREFIX not in written
    assert "static-auth-secret=" not in manifest(dev, "configmap", "coturn")["data"]["turnserver.conf"]


def turn_conf(plan: Plan) -> list[str]:
    return manifest(plan, "configmap", "coturn")["data"]["turnserver.conf"].splitlines()


def peers(conf: list[str], option: str) -> list[str]:
    return [line.split("=", 1)[1] for line in conf if line.startswith(f"{option}=")]


NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"


def test_relay_range_and_media_peers_come_from_the_network_config(tmp_path: Path) -> None:
    """One source of truth: moving the relay range and the subnets moves coturn and the NSG rules together."""
    plan = plan_with(
        tmp_path,
        network={**OTHER_ADDRESS_PLAN, "relayPorts": {"min": 40000, "max": 40999}},
        cluster={"servicesCidr": "10.200.0.0/16"},
    )
    conf = turn_conf(plan)
    assert "min-port=40000" in conf and "max-port=40999" in conf
    assert peers(conf, "allowed-peer-ip") == ["172.20.128.0-172.20.143.255"]
    assert {"172.20.0.0-172.20.255.255", "10.200.0.0-10.200.255.255"} <= set(peers(conf, "denied-peer-ip"))
    rules = {r.name: r.inputs for r in plan.of_type(NSG_RULE)}
    assert "pixelstream-dev-turn-in-udp-40000-40999-from-0-0-0-0-0" in rules
    assert not [name for name in rules if "-40000-40999-" in name and "-tcp-" in name], "the relay is UDP only"
    subnets = {r.name: r.inputs["cidrBlock"] for r in plan.of_type("oci:Core/subnet:Subnet")}
    assert subnets["pixelstream-dev-streams-subnet"] == "172.20.128.0/20"
    relay_to_streams = rules["pixelstream-dev-turn-out-udp-to-streams"]
    assert relay_to_streams["destination"] == "ocid1.networksecuritygroup.offline..pixelstream-dev-streams-nsg"
    # TURN's way out is everything outside the new VCN, not 0.0.0.0/0
    out = {i["destination"] for n, i in rules.items() if n.startswith("pixelstream-dev-turn-out-all-to-")}
    assert "0.0.0.0/0" not in out and {"172.21.0.0/16", "0.0.0.0/1"} <= out
    assert not any(ipaddress.ip_network(c).overlaps(ipaddress.ip_network("172.20.0.0/16")) for c in out)


def test_flannel_relays_to_every_pod_only_with_the_opt_in_and_warns(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        cluster={"cni": "flannel", "podsCidr": "172.30.0.0/16"},
        streaming={"turn": {"allowRelayToAllPods": True}},
    )
    conf = turn_conf(plan)
    assert peers(conf, "allowed-peer-ip") == ["172.30.0.0-172.30.255.255"]
    assert "172.30.0.0-172.30.255.255" in peers(conf, "denied-peer-ip")
    assert any("allowRelayToAllPods" in w and "every pod" in w for w in plan.warnings), plan.warnings


def test_vcn_native_stacks_do_not_warn_about_the_relay(dev: Plan) -> None:
    assert not [w for w in dev.warnings if "allowRelayToAllPods" in w]


def test_turn_denies_metadata_private_and_the_platforms_own_networks(dev: Plan) -> None:
    conf = turn_conf(dev)
    denied = set(peers(conf, "denied-peer-ip"))
    assert {
        "169.254.0.0-169.254.255.255",
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "10.0.0.0-10.0.255.255",  # the VCN
        "10.96.0.0-10.96.255.255",  # the services CIDR
        "::ffff:0:0-::ffff:ffff:ffff",  # IPv4-mapped IPv6 (CVE-2026-27624)
        "64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        "100::-100::ffff:ffff:ffff:ffff",
    } <= denied
    assert peers(conf, "allowed-peer-ip") == ["10.0.192.0-10.0.223.255"], "exactly the stream pod subnet"
    assert {"use-auth-secret", "fingerprint", "prometheus", "no-tcp-relay", "unauthorized-ratelimit"} <= set(conf)
    assert "bps-capacity=250000000" in conf and "user-quota=20" in conf
    assert not [line for line in conf if line.startswith(("user=", "lt-cred-mech"))], "no static users"


def stream_pod(plan: Plan) -> dict:
    return manifest(plan, "deployment", "stream")["spec"]["template"]


def test_stream_pod_placement_probes_and_drain(dev: Plan) -> None:
    template = stream_pod(dev)
    spec = template["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/gpu", "operator": "In", "values": ["true"]}]}]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    by_name = {c["name"]: c for c in spec["containers"]}
    assert set(by_name) == {"signaler", "streamer", "deletion-cost"}
    signaler = by_name["signaler"]
    startup = signaler["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "a slow Unreal start is not killed"
    assert "httpGet" not in signaler["livenessProbe"], "liveness does not depend on the Unreal app"
    assert "--rtcConfigSvc=http://ice-config" in signaler["args"]
    assert "--MatchmakerAddress=matchmaker" in signaler["args"]
    assert spec["terminationGracePeriodSeconds"] >= 120
    assert by_name["streamer"]["lifecycle"]["preStop"]["exec"]["command"][0] == "bash"
    env = {e["name"]: e.get("value") for e in by_name["streamer"]["env"]}
    capabilities = set(env["NVIDIA_DRIVER_CAPABILITIES"].split(","))
    assert {"video", "graphics"} <= capabilities
    assert (env["RES_X"], env["RES_Y"]) == ("1920", "1080")
    assert "-PixelStreamingWebRTCMaxFps=30" in env["EXTRA_ARGS"]
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9000"}


@pytest.mark.parametrize(
    ("config", "resource"),
    [
        ({}, {"nvidia.com/gpu": "1"}),
        (
            {"addons": {"gpuPlugin": {"streamsPerGpu": 3}}, "streaming": {"streamer": {"gpuMode": "timeSliced"}}},
            {"nvidia.com/gpu.shared": "1"},
        ),
        ({"streaming": {"streamer": {"gpuMode": "cpuPacked", "cpu": "3750m"}}}, {}),
    ],
    ids=["whole", "timeSliced", "cpuPacked"],
)
def test_gpu_modes(tmp_path: Path, config: dict, resource: dict) -> None:
    plan = plan_with(tmp_path, **config)
    streamer = next(c for c in stream_pod(plan)["spec"]["containers"] if c["name"] == "streamer")
    gpu = {k: v for k, v in streamer["resources"]["limits"].items() if k.startswith("nvidia.com/")}
    assert gpu == resource
    assert {k: v for k, v in streamer["resources"]["requests"].items() if k.startswith("nvidia.com/")} == resource
    env = {e["name"]: e.get("value") for e in streamer["env"]}
    assert ("NVIDIA_VISIBLE_DEVICES" in env) == (not resource), "without a GPU request the runtime must be told"
    if not resource:
        assert streamer["resources"]["requests"]["cpu"] == "3750m"


def test_streamer_settings_from_config(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        streaming={
            "streamer": {
                "resolutionWidth": 2560,
                "resolutionHeight": 1440,
                "maxFps": 60,
                "extraArgs": ["-PixelStreamingEncoderMaxQP=30"],
                "drainSeconds": 300,
            }
        },
    )
    spec = stream_pod(plan)["spec"]
    streamer = next(c for c in spec["containers"] if c["name"] == "streamer")
    env = {e["name"]: e.get("value") for e in streamer["env"]}
    assert (env["RES_X"], env["RES_Y"]) == ("2560", "1440")
    assert "-PixelStreamingWebRTCMaxFps=60" in env["EXTRA_ARGS"] and env["EXTRA_ARGS"].endswith(
        "-PixelStreamingEncoderMaxQP=30"
    )
    assert spec["terminationGracePeriodSeconds"] == 330
    assert streamer["lifecycle"]["preStop"]["exec"]["command"][4] == "60"


def test_ingress_with_host_tls_issuer_and_prefix(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        addons={"certManager": {"email": "ops@pixel.example.org"}},
        streaming={
            "ingress": {"host": "play.pixel.example.org", "pathPrefix": "/demo", "issuer": "letsencrypt-staging"}
        },
    )
    ingress = manifest(plan, "ingress", "pixelstream")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["play.pixel.example.org"], "secretName": "pixelstream-tls"}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "play.pixel.example.org"
    assert rule["http"]["paths"][0]["path"] == "/demo/(.*)"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert plan.outputs["url"] == "https://play.pixel.example.org/demo/"
    controller = plan.named("kubernetes:helm.sh/v3:Release", "ingress-nginx").urn
    assert controller in plan.named("kubernetes:networking.k8s.io/v1:Ingress", "pixelstream").dependencies


def test_pod_proxy_behind_generated_basic_auth(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"podProxy": {"enabled": True}})
    routes = manifest(plan, "configmap", "router-config")["data"]["routes.yml"]
    assert "basicAuth" in routes and "PathPrefix(`/proxy/`)" in routes
    assert manifest(plan, "secret", "pod-proxy-auth")["stringData"] == {"users": "[secret]"}
    assert plan.outputs["podProxyPassword"] == "[secret]" and plan.outputs["podProxyUsername"] == "[secret]"
    assert "horizontalpodautoscaler.podproxy-autoscaler.yaml" in " ".join(plan.manifests())
    assert "podProxyPassword" not in plan_stack("dev", ROOT)[0].outputs, "off by default"


def test_router_routes_as_the_reference(dev: Plan) -> None:
    import yaml

    routes = yaml.safe_load(manifest(dev, "configmap", "router-config")["data"]["routes.yml"])["http"]
    assert routes["routers"]["client"]["rule"] == "Method(`GET`) && PathPrefix(`/`)"
    assert routes["routers"]["matchmaker"]["rule"] == "PathPrefix(`/ws`) || PathPrefix(`/matchmaker`)"
    assert routes["services"]["matchmaker"]["loadBalancer"]["servers"] == [{"url": "http://matchmaker:3000"}]
    assert routes["services"]["client"]["loadBalancer"]["servers"] == [{"url": "http://player:80"}]
    assert "pod-proxy" not in routes["routers"]
    cpu_hpa = manifest(dev, "horizontalpodautoscaler", "router-autoscaler")["spec"]["metrics"]
    assert cpu_hpa == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
    ]


def test_images_are_pinned_and_overridable(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    plan = plan_with(
        tmp_path, streaming={"images": {"unreal": f"registry.example/game@{digest}"}, "imagePullSecrets": ["ocir"]}
    )
    used = {c["image"] for spec in pod_specs(plan).values() for c in containers(spec)}
    assert f"registry.example/game@{digest}" in used
    assert {IMAGES["coturn"], IMAGES["python"], IMAGES["traefik"]} <= used
    for workload, spec in pod_specs(plan).items():
        assert spec["imagePullSecrets"] == [{"name": "ocir"}], workload
    assert not [w for w in plan.warnings if w.startswith("image unreal ")], "a digest is pinned"
    assert [w for w in plan.warnings if w.startswith("image signalserver ")], (
        "the reference's `latest` tags are called out"
    )


def test_disruption_budgets_protect_sessions_without_blocking_drains(dev: Plan) -> None:
    budgets = {
        obj["metadata"]["name"]: obj["spec"] for obj in dev.manifests().values() if obj["kind"] == "PodDisruptionBudget"
    }
    assert set(budgets) == {"stream", "player", "router", "ice-config"}
    assert all(spec == {"maxUnavailable": 1, "selector": spec["selector"]} for spec in budgets.values())
