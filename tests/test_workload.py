"""The streaming workload's manifests: placement, autoscaling, probes, least privilege, secrets, images, and the
player edge (the session service, its auth modes, the routes and their limits)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from conftest import OTHER_ADDRESS_PLAN, ROOT
from test_addons import plan_with
from test_stack_files import _dev, run_plan

from pixelstream.tools.offline import OFFLINE_PASSWORD_PREFIX, Plan, plan_stack
from pixelstream.workloads.images import IMAGES

NS = "pixel"
# The session service's Role in the dev stack: the stream pods (their deletion cost), the one ConfigMap of the
# builds, and the scale of the one build's Deployment.
SESSION_ROLE_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["session-builds"], "verbs": ["get"]},
    # The players' state, which the service writes and its next instance reads: that one Secret, no other.
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["session-state"], "verbs": ["get", "patch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "resourceNames": ["stream-main"],
        "verbs": ["get", "patch"],
    },
]


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


def builds_document(plan: Plan) -> dict:
    return json.loads(manifest(plan, "configmap", "session-builds")["data"]["builds.json"])


def test_the_session_service_scales_the_streams_and_no_hpa_does(dev: Plan) -> None:
    assert builds_document(dev) == {
        "scaleDownSeconds": 30,
        "builds": [
            {
                "name": "main",
                "weight": 1,
                "unrealVersion": "5.7",
                "deployment": "stream-main",
                "bufferStreams": 1,
                "minReplicas": 1,
                "maxReplicas": 10,
            }
        ],
        "schedules": [],
    }
    assert not [m for m in dev.manifests().values() if m["kind"] == "HorizontalPodAutoscaler"]
    assert "replicas" not in manifest(dev, "deployment", "stream-main")["spec"], "the session service owns the count"
    assert not [r for r in dev.resources if "prometheus-adapter" in r.name or "custom-metrics" in r.name]


def test_a_build_that_keeps_no_stream_while_idle_is_warned_of(tmp_path: Path, dev: Plan) -> None:
    assert not [w for w in dev.warnings if "keeps no stream" in w]
    plan = plan_with(tmp_path, streaming={"autoscaling": {"minReplicas": 0, "bufferStreams": 0}})
    assert [w for w in plan.warnings if "build main keeps no stream while nobody plays" in w]


def test_autoscaling_from_config(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        streaming={
            "autoscaling": {
                "minReplicas": 2,
                "maxReplicas": 40,
                "bufferStreams": 3,
                "scaleDown": {"stabilizationSeconds": 300},
            },
            # 40 sessions at 4 allocations each on one TURN node
            "turn": {"capacityBytesPerSecond": 1_000_000_000},
        },
    )
    document = builds_document(plan)
    [main] = document["builds"]
    assert (main["minReplicas"], main["maxReplicas"], main["bufferStreams"]) == (2, 40, 3)
    assert document["scaleDownSeconds"] == 300
    variables = manifest(plan, "validatingadmissionpolicy", "pixelstream-pixel-session-scale-bounds", None)["spec"]
    assert variables["variables"] == [{"name": "maxReplicas", "expression": "{'stream-main': 40}"}]


def test_the_session_service_is_scraped_for_the_service_label_and_runs_once(dev: Plan) -> None:
    service = manifest(dev, "service", "session")
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9000"}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 80, "metrics": 9000}
    sessions = manifest(dev, "deployment", "session")["spec"]
    assert sessions["replicas"] == 1 and sessions["strategy"] == {"type": "Recreate"}, "one queue, one owner"


def test_every_container_has_requests_and_limits(dev: Plan) -> None:
    for workload, spec in pod_specs(dev).items():
        for container in containers(spec):
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][section]), (
                    f"{workload}/{container['name']} {section}"
                )


# The pod proxy on, its basic auth over HTTPS (a host, with the dev stack's cert-manager).
POD_PROXY = {"ingress": {"host": "play.example.com"}, "podProxy": {"enabled": True}}


def test_every_pod_runs_non_root_where_the_image_allows(dev: Plan, tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming=POD_PROXY)
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
        "Deployment/session/session",
        "Deployment/stream-main/signalling",
    } <= read_only


def test_only_the_containers_that_call_the_api_hold_a_token(dev: Plan) -> None:
    holders = set()
    for workload, spec in pod_specs(dev).items():
        automount = spec.get("automountServiceAccountToken", True)
        for container in containers(spec):
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if automount or "/var/run/secrets/kubernetes.io/serviceaccount" in mounts:
                holders.add(f"{workload}/{container['name']}")
    assert holders == {"DaemonSet/turn/bootstrap", "Deployment/session/session"}, "no stream pod holds one"


def test_no_cluster_role_can_patch_nodes_or_pods(dev: Plan) -> None:
    cluster_roles = [obj for obj in dev.manifests().values() if obj["kind"] == "ClusterRole"]
    assert cluster_roles, "the node readers exist"
    for role in cluster_roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
            assert rule["resources"] == ["nodes"]
    assert manifest(dev, "role", "session-streams")["rules"] == SESSION_ROLE_RULES
    verbs = {
        obj["metadata"]["name"]: obj["rules"][0]["verbs"]
        for obj in dev.manifests().values()
        if obj["kind"] == "ClusterRole"
    }
    assert verbs == {"pixelstream-pixel-session-nodes": ["list"], "pixelstream-pixel-turn-nodes": ["get"]}
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
    assert "bps-capacity=250000000" in conf and "user-quota=4" in conf
    assert not [line for line in conf if line.startswith(("user=", "lt-cred-mech"))], "no static users"


def stream_pod(plan: Plan) -> dict:
    return manifest(plan, "deployment", "stream-main")["spec"]["template"]


def test_stream_pod_placement_probes_and_drain(dev: Plan) -> None:
    template = stream_pod(dev)
    spec = template["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/gpu", "operator": "In", "values": ["true"]}]}]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    by_name = {c["name"]: c for c in spec["containers"]}
    assert set(by_name) == {"signalling", "streamer"}
    signalling = by_name["signalling"]
    assert signalling["image"] == IMAGES["signalling-ue5.7"]
    # Wilbur's own options (SignallingWebServer/src/index.ts at signalling-webserver-UE5.7-3.1.0), no config file.
    assert signalling["workingDir"] == "/SignallingWebServer/SignallingWebServer"
    assert signalling["command"] == ["node", "dist/index.js"]
    assert signalling["args"] == [
        "--no_config",
        "--player_port=8080",
        "--streamer_port=8888",
        "--sfu_port=",  # empty: no SFU listener (SignallingServer.ts starts one only for a truthy port)
        "--max_players=1",
        "--rest_api",
        "--log_folder=/tmp/logs",
        "--log_level_console=info",
        "--log_level_file=error",
    ]
    startup = signalling["startupProbe"]
    assert startup["exec"]["command"][-2:] == ["8080", "streamer_count"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "a slow Unreal start is not killed"
    assert signalling["readinessProbe"]["exec"] == startup["exec"], "ready while the streamer is connected"
    assert "exec" not in signalling["livenessProbe"], "liveness does not depend on the Unreal app"
    assert spec["terminationGracePeriodSeconds"] >= 120
    assert by_name["streamer"]["lifecycle"]["preStop"]["exec"]["command"][0] == "bash"
    assert signalling["lifecycle"] == by_name["streamer"]["lifecycle"], "Wilbur outlives the drain too"
    env = {e["name"]: e.get("value") for e in by_name["streamer"]["env"]}
    capabilities = set(env["NVIDIA_DRIVER_CAPABILITIES"].split(","))
    assert {"video", "graphics"} <= capabilities
    assert (env["RES_X"], env["RES_Y"]) == ("1920", "1080")
    assert env["SIGNAL_URL"] == "ws://localhost:8888"
    assert "-PixelStreamingSignallingURL=ws://localhost:8888" in env["EXTRA_ARGS"]
    assert "-PixelStreamingWebRTCMaxFps=30" in env["EXTRA_ARGS"]
    assert "annotations" not in template["metadata"], "nothing in a stream pod to scrape"


def test_console_commands_only_when_a_stack_opts_in_and_then_every_plan_warns(dev: Plan, tmp_path: Path) -> None:
    def extra_args(plan: Plan) -> str:
        streamer = next(c for c in stream_pod(plan)["spec"]["containers"] if c["name"] == "streamer")
        return next(e["value"] for e in streamer["env"] if e["name"] == "EXTRA_ARGS")

    assert "-AllowPixelStreamingCommands" not in extra_args(dev)
    assert not [w for w in dev.warnings if "console commands" in w]
    plan = plan_with(tmp_path, streaming={"streamer": {"allowConsoleCommands": True}})
    assert "-AllowPixelStreamingCommands" in extra_args(plan).split()
    assert [w for w in plan.warnings if "allowConsoleCommands: true" in w and "Epic's security" in w]


def test_the_unreal_version_picks_the_signalling_server_and_the_player_page(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"unrealVersion": "5.6"})
    images = {c["image"] for c in stream_pod(plan)["spec"]["containers"]}
    assert IMAGES["signalling-ue5.6"] in images and IMAGES["signalling-ue5.7"] not in images
    [main] = builds_document(plan)["builds"]
    assert (main["name"], main["unrealVersion"]) == ("main", "5.6"), "the page follows"
    prepull = manifest(plan, "daemonset", "stream-image-prepull")["spec"]["template"]["spec"]
    assert IMAGES["signalling-ue5.6"] in {c["image"] for c in prepull["initContainers"]}, "the pre-pull follows"


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
    assert streamer["lifecycle"]["preStop"]["exec"]["command"][-2:] == ["60", "5"], "300 s in checks of 5 s"


def test_every_player_route_goes_to_the_session_service_with_tls_and_its_limits(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        addons={"certManager": {"email": "ops@pixel.example.org"}},
        streaming={
            "ingress": {"host": "play.pixel.example.org", "pathPrefix": "/demo", "issuer": "letsencrypt-staging"},
            "players": {"rateLimits": {"joinsPerMinute": 6, "signallingConnections": 2}},
        },
    )
    routes = {}
    for name in ("pixelstream", "pixelstream-join", "pixelstream-signalling"):
        ingress = manifest(plan, "ingress", name)
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"] == [{"hosts": ["play.pixel.example.org"], "secretName": f"{name}-tls"}]
        [rule] = ingress["spec"]["rules"]
        assert rule["host"] == "play.pixel.example.org"
        [path] = rule["http"]["paths"]
        assert path["backend"] == {"service": {"name": "session", "port": {"number": 80}}}
        annotations = ingress["metadata"]["annotations"]
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
        assert not [a for a in annotations if "auth-url" in a], "without sign-in nothing asks oauth2-proxy"
        routes[path["path"]] = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in annotations.items()}
    assert set(routes) == {"/demo/(.*)", "/demo/(api/session)$", "/demo/(ws)$"}
    assert routes["/demo/(.*)"]["limit-rps"] == "20"
    assert routes["/demo/(api/session)$"]["limit-rpm"] == "6" and "limit-rps" not in routes["/demo/(api/session)$"]
    signalling = routes["/demo/(ws)$"]
    assert (signalling["limit-connections"], signalling["limit-rpm"]) == ("2", "20")
    assert signalling["proxy-read-timeout"] == "3600", "a websocket lives as long as its session"
    assert {r["limit-burst-multiplier"] for r in routes.values()} == {"3"}
    assert plan.outputs["url"] == "https://play.pixel.example.org/demo/"
    controller = plan.named("kubernetes:helm.sh/v3:Release", "ingress-nginx").urn
    assert controller in plan.named("kubernetes:networking.k8s.io/v1:Ingress", "pixelstream").dependencies
    session = manifest(plan, "deployment", "session")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in session["env"]}
    assert (env["COOKIE_SECURE"], env["COOKIE_PATH"]) == ("true", "/demo/")


def test_pod_proxy_behind_generated_basic_auth(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming=POD_PROXY)
    ingress = manifest(plan, "ingress", "pixelstream-pod-proxy")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert annotations["nginx.ingress.kubernetes.io/auth-secret"] == "pod-proxy-auth"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/proxy/(.*)"
    # ingress-nginx reads the htpasswd lines under the key `auth` (auth-secret-type auth-file, its default).
    assert manifest(plan, "secret", "pod-proxy-auth")["stringData"] == {"auth": "[secret]"}
    assert plan.outputs["podProxyPassword"] == "[secret]" and plan.outputs["podProxyUsername"] == "[secret]"
    assert "podProxyPassword" not in plan_stack("dev", ROOT)[0].outputs, "off by default"
    assert ingress["spec"]["tls"] == [{"hosts": ["play.example.com"], "secretName": "pixelstream-pod-proxy-tls"}]


def test_the_pod_proxy_over_plain_http_only_by_choice_and_every_plan_says_so(tmp_path: Path, capsys) -> None:
    plain = {"podProxy": {"enabled": True, "allowPlainHttp": True}}
    status, _, everything, _ = run_plan(_dev(streaming=plain), tmp_path, capsys)
    assert status == 0, everything[-2000:]
    assert "warning: the pod proxy takes the basic-auth password over plain HTTP" in everything
    status, _, everything, _ = run_plan(_dev(streaming=POD_PROXY), tmp_path, capsys)
    assert status == 0 and "over plain HTTP" not in everything, everything[-2000:]


def test_images_are_pinned_and_overridable(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    plan = plan_with(
        tmp_path, streaming={"images": {"unreal": f"registry.example/game@{digest}"}, "imagePullSecrets": ["ocir"]}
    )
    used = {c["image"] for spec in pod_specs(plan).values() for c in containers(spec)}
    assert f"registry.example/game@{digest}" in used
    assert {IMAGES["coturn"], IMAGES["python"], IMAGES["session"], IMAGES["signalling-ue5.7"]} <= used
    for workload, spec in pod_specs(plan).items():
        assert spec["imagePullSecrets"] == [{"name": "ocir"}], workload
    assert not [w for w in plan.warnings if w.startswith("image unreal ")], "a digest is pinned"
    assert [w for w in plan.warnings if w.startswith("image signalling-ue5.7 ") and "moving tag" in w], (
        "Epic's per-branch tag is called out"
    )
    assert [w for w in plan.warnings if w.startswith("image session ") and "no node can pull" in w], (
        "until a stack pins the published session service, the plan says which image it would use"
    )


def test_a_pinned_session_image_and_unreal_build_quiet_their_warnings(tmp_path: Path) -> None:
    digest = "sha256:" + "b" * 64
    images = {"session": f"ghcr.io/acme/pixelstream/session@{digest}", "unreal": f"registry.example/game@{digest}"}
    plan = plan_with(tmp_path, streaming={"images": images})
    assert not [w for w in plan.warnings if w.startswith(("image session ", "image unreal "))]
    containers_of_sessions = manifest(plan, "deployment", "session")["spec"]["template"]["spec"]["containers"]
    assert containers_of_sessions[0]["image"] == images["session"]


def test_disruption_budgets_protect_sessions_without_blocking_drains(dev: Plan) -> None:
    budgets = {
        obj["metadata"]["name"]: obj["spec"] for obj in dev.manifests().values() if obj["kind"] == "PodDisruptionBudget"
    }
    assert set(budgets) == {"stream", "session", "turn-drain-hold"}
    assert all(spec == {"maxUnavailable": 1, "selector": spec["selector"]} for spec in budgets.values())


TLS_STREAMING = {"ingress": {"host": "play.example.com"}, "turn": {"tls": {"host": "turn.play.example.com"}}}


def test_turn_over_tls_on_443_is_passed_through_to_coturn_with_a_certificate_it_reloads(
    dev: Plan, tmp_path: Path
) -> None:
    plan = plan_with(tmp_path, streaming=TLS_STREAMING)
    certificate = manifest(plan, "certificate", "turn-tls")
    assert certificate["spec"] == {
        "secretName": "turn-tls",
        "dnsNames": ["turn.play.example.com"],
        "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt-prod"},
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
    }
    service = manifest(plan, "service", "turn-tls")["spec"]
    assert service["selector"] == manifest(plan, "daemonset", "turn")["spec"]["selector"]["matchLabels"]
    assert service["ports"] == [{"name": "turns", "port": 443, "targetPort": 5349}]
    ingress = manifest(plan, "ingress", "turn-tls")
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"}
    assert "tls" not in ingress["spec"], "the TLS is coturn's, not the controller's"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "turn.play.example.com"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "turn-tls", "port": {"number": 443}}}
    controller = plan.helm_releases()["ingress-nginx.yaml"]["values"]["controller"]
    assert controller["extraArgs"] == {"enable-ssl-passthrough": "true"}
    assert "extraArgs" not in dev.helm_releases()["ingress-nginx.yaml"]["values"]["controller"], "off without it"
    pod = manifest(plan, "daemonset", "turn")["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    by_name = {c["name"]: c for c in pod["containers"]}
    assert set(by_name) == {"coturn", "tls-reloader"}
    assert {"containerPort": 5349, "hostPort": 5349, "protocol": "TCP", "name": "turns"} in by_name["coturn"]["ports"]
    reloader = by_name["tls-reloader"]
    assert reloader["command"][-1].endswith("tls_reloader.py") and reloader["securityContext"]["runAsUser"] == 65534
    assert {m["mountPath"] for m in reloader["volumeMounts"]} >= {"/etc/coturn/tls", "/var/tmp"}
    conf = turn_conf(plan)
    assert "tls-listening-port=5349" in conf and "no-tls" not in conf and "cert=/etc/coturn/tls/tls.crt" in conf
    assert "pidfile=/var/tmp/turnserver.pid" in conf, "where the reloader reads coturn's process id"
    session = manifest(plan, "deployment", "session")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TURN_TLS_URL", "value": "turns:turn.play.example.com:443?transport=tcp"} in session["env"]
    rules = {r.name: r.inputs for r in plan.of_type(NSG_RULE)}
    tls_rules = [
        i for i in rules.values() if i.get("tcpOptions", {}).get("destinationPortRange") == {"min": 5349, "max": 5349}
    ]
    # Resources register concurrently: their order in the plan is not theirs to keep.
    assert sorted((i["direction"], i["description"]) for i in tls_rules) == [
        ("EGRESS", "the ingress controller to coturn's TLS listener"),
        ("INGRESS", "the ingress controller to coturn's TLS listener"),
    ]
    assert not [i for i in tls_rules if "0.0.0.0/0" in (i.get("source"), i.get("destination"))], "never the world"


def test_without_turn_over_tls_coturn_listens_for_plain_turn_only(dev: Plan) -> None:
    assert "no-tls" in turn_conf(dev)
    pod = manifest(dev, "daemonset", "turn")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["coturn"] and "shareProcessNamespace" not in pod
    assert "pixel.certificate.turn-tls.yaml" not in dev.manifests()
    rules = [r.inputs for r in dev.of_type(NSG_RULE)]
    assert not [i for i in rules if i.get("tcpOptions", {}).get("destinationPortRange") == {"min": 5349, "max": 5349}]


# -- builds side by side ---------------------------------------------------------------------------------------

GAME = "registry.example/game"
# Their maxReplicas together the dev TURN node's 10 sessions.
MAIN = {"name": "main", "image": f"{GAME}:1.4.0@sha256:" + "a" * 64, "weight": 90, "maxReplicas": 5}
CANARY = {
    "name": "canary",
    "image": f"{GAME}:1.5.0@sha256:" + "b" * 64,
    "unrealVersion": "5.6",
    "weight": 10,
    "maxReplicas": 3,
}
OLD = {"name": "old", "image": f"{GAME}:1.3.0@sha256:" + "c" * 64, "weight": 0, "maxReplicas": 2}


@pytest.fixture(scope="module")
def three_builds(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_with(tmp_path_factory.mktemp("builds"), streaming={"builds": [MAIN, CANARY, OLD]})


def test_each_build_gets_its_own_stream_pool_of_its_image_and_signalling(three_builds: Plan) -> None:
    for build, image, signalling in (
        ("main", MAIN["image"], IMAGES["signalling-ue5.7"]),
        ("canary", CANARY["image"], IMAGES["signalling-ue5.6"]),
        ("old", OLD["image"], IMAGES["signalling-ue5.7"]),
    ):
        deployment = manifest(three_builds, "deployment", f"stream-{build}")
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["pixelstream.io/build"] == build and selector["app.kubernetes.io/name"] == "stream"
        assert deployment["spec"]["template"]["metadata"]["labels"] == selector
        images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
        assert images == {"signalling": signalling, "streamer": image}
    deployments = {n for n in three_builds.manifests() if n.startswith("pixel.deployment.stream")}
    assert deployments == {f"pixel.deployment.stream-{b}.yaml" for b in ("main", "canary", "old")}


def test_each_build_scales_between_its_own_bounds_with_its_own_buffer(three_builds: Plan) -> None:
    scaling = {
        b["name"]: (b["deployment"], b["minReplicas"], b["maxReplicas"], b["bufferStreams"])
        for b in builds_document(three_builds)["builds"]
    }
    # the canary its own maximum; the build at weight 0 no buffer and no floor: the streams in use, then none
    assert scaling == {
        "main": ("stream-main", 1, 5, 1),
        "canary": ("stream-canary", 1, 3, 1),
        "old": ("stream-old", 0, 2, 0),
    }
    role = manifest(three_builds, "role", "session-streams")
    [scale] = [rule for rule in role["rules"] if rule["resources"] == ["deployments/scale"]]
    assert scale["resourceNames"] == ["stream-canary", "stream-main", "stream-old"]
    policy = manifest(three_builds, "validatingadmissionpolicy", "pixelstream-pixel-session-scale-bounds", None)
    expected = "{'stream-canary': 3, 'stream-main': 5, 'stream-old': 2}"
    assert policy["spec"]["variables"] == [{"name": "maxReplicas", "expression": expected}]


def test_the_session_service_learns_the_weights_from_a_file_not_its_pod_spec(three_builds: Plan, dev: Plan) -> None:
    weights = {b["name"]: (b["weight"], b["unrealVersion"]) for b in builds_document(three_builds)["builds"]}
    assert weights == {"main": (90, "5.7"), "canary": (10, "5.6"), "old": (0, "5.7")}
    # Promoting a build changes the file alone: the session service's pod (its sessions in memory) stays.
    assert manifest(three_builds, "deployment", "session") == manifest(dev, "deployment", "session")


def test_one_disruption_budget_covers_every_builds_streams(three_builds: Plan) -> None:
    budget = manifest(three_builds, "poddisruptionbudget", "stream")["spec"]
    assert budget == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/part-of": "pixelstream", "app.kubernetes.io/name": "stream"}},
    }


def test_every_node_pulls_every_builds_image_once(three_builds: Plan) -> None:
    prepull = manifest(three_builds, "daemonset", "stream-image-prepull")["spec"]["template"]["spec"]
    pulls = {c["name"]: c["image"] for c in prepull["initContainers"]}
    assert pulls == {
        "pull-signalling-ue5-6": IMAGES["signalling-ue5.6"],
        "pull-signalling-ue5-7": IMAGES["signalling-ue5.7"],
        "pull-build-main": MAIN["image"],
        "pull-build-canary": CANARY["image"],
        "pull-build-old": OLD["image"],
    }


def test_promotion_is_a_weight_change_and_removing_a_build_removes_its_pool(tmp_path: Path, three_builds: Plan) -> None:
    builds = [{**MAIN, "weight": 0}, {**CANARY, "weight": 100}]
    promoted = plan_with(tmp_path, streaming={"builds": builds, "autoscaling": {"minReplicas": 2}})
    scaling = {b["name"]: (b["minReplicas"], b["bufferStreams"]) for b in builds_document(promoted)["builds"]}
    assert scaling == {"main": (0, 0), "canary": (2, 1)}, "a build at weight 0 keeps the streams in use, no idle one"
    assert manifest(promoted, "deployment", "stream-main") == manifest(three_builds, "deployment", "stream-main")
    assert "pixel.deployment.stream-old.yaml" not in promoted.manifests()


@pytest.mark.slow
def test_three_builds_pass_the_strict_schemas(three_builds: Plan, tmp_path: Path) -> None:
    """The per-build Deployments, labels, Role and admission policies as Kubernetes 1.34's API schemas take them."""
    from pixelstream.tools.checks import validate_manifests

    three_builds.write(tmp_path / "builds")
    problems, _ = validate_manifests(tmp_path / "builds", "1.34.2")
    assert problems == []
