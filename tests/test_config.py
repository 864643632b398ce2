"""Stack configuration: defaults, the committed stacks, and one clear error per invalid value."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import COMPARTMENT, ROOT

from pixelstream.addons.cluster_autoscaler import AutoscalerTimings
from pixelstream.config import ConfigError, StackConfig, load_stack_config
from pixelstream.tools.offline import read_stack_config, run_offline

BUILD = {"name": "main", "image": "registry.example/game:1.4.0@sha256:" + "a" * 64}
CANARY = {"name": "canary", "image": "registry.example/game:1.5.0@sha256:" + "b" * 64, "weight": 1}


def parse(**overrides: Any) -> StackConfig:
    raw: dict[str, Any] = {"compartmentId": COMPARTMENT}
    raw.update(overrides)
    return StackConfig.parse(raw)


def test_defaults_need_only_a_compartment() -> None:
    config = parse()
    assert config.network.vcn_cidr == "10.0.0.0/16"
    assert config.network.relay_ports.bounds == (49152, 65535)
    assert config.cluster.type == "ENHANCED" and config.cluster.cni == "vcnNative"
    assert (config.network.subnets.pods, config.network.subnets.stream_pods) == ("10.0.128.0/18", "10.0.192.0/19")
    assert config.cluster.endpoint.public is False and config.cluster.endpoint.allowed_cidrs == []
    assert config.node_pools.gpu.shape == "VM.GPU.A10.1"
    assert config.node_pools.turn.shape == "VM.Standard.E4.Flex"
    assert [pool for pool, _ in config.node_pools.items()] == ["default", "turn", "gpu"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_are_valid(stack: str) -> None:
    values = read_stack_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml", "pixelstream").values
    import json

    from pixelstream.config import STRING_KEYS

    raw = {
        key.split(":", 1)[1]: v if key.split(":", 1)[1] in STRING_KEYS else json.loads(v)
        for key, v in values.items()
        if key.startswith("pixelstream:")
    }
    config = parse(**raw)
    if stack == "dev":
        assert config.cluster.endpoint.public and config.cluster.endpoint.allowed_cidrs == ["198.51.100.0/24"]
        assert all(spec.availability_domains == [1] for _, spec in config.node_pools.items())
        assert config.node_pools.turn.size == 1 and config.node_pools.gpu.size == 1
    else:
        assert not config.cluster.endpoint.public
        assert config.node_pools.default.size >= 3 and config.node_pools.default.availability_domains == [1, 2, 3]
        assert config.node_pools.turn.size == 2
        assert (config.node_pools.gpu.min_size, config.node_pools.gpu.max_size) == (1, 5)
        assert config.streaming.autoscaling.buffer_streams >= 1 and config.streaming.streamer.gpu_mode == "timeSliced"
        assert config.environment == "production" and config.streaming.players.auth.mode == "signedLinks"


GPU = {"gpu": {"shape": "BM.GPU.H100.8"}}
RELAY_TO_ALL_PODS = {"turn": {"allowRelayToAllPods": True}}
AUTOSCALED = {"size": 1, "minSize": 1, "maxSize": 3}


class _Remove:
    """Removes a key where an override names it; survives the deep copies the merges make."""

    def __deepcopy__(self, memo: dict) -> _Remove:
        return self


REMOVE = _Remove()

# (overrides, key path the message must name, words it must contain)
INVALID: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("compartment missing", {"compartmentId": REMOVE}, "compartmentId", ["pulumi config set compartmentId"]),
    ("compartment not an OCID", {"compartmentId": "my-compartment"}, "compartmentId", ["my-compartment"]),
    ("unknown key", {"network": {"vcnCIDR": "10.0.0.0/16"}}, "network.vcnCIDR", ["unknown key", "vcnCidr"]),
    ("bad vcn cidr", {"network": {"vcnCidr": "10.0.0.0/33"}}, "network.vcnCidr", ["10.0.0.0/33", "IPv4 CIDR"]),
    ("host bits", {"network": {"vcnCidr": "10.0.0.1/16"}}, "network.vcnCidr", ["10.0.0.1/16", "10.0.0.0/16"]),
    ("vcn too big", {"network": {"vcnCidr": "10.0.0.0/8"}}, "network.vcnCidr", ["10.0.0.0/8", "/16"]),
    (
        "subnet outside vcn",
        {"network": {"subnets": {"turn": "192.168.30.0/24"}}},
        "network.subnets.turn",
        ["192.168.30.0/24", "not inside the VCN"],
    ),
    (
        "subnets overlap",
        {"network": {"subnets": {"loadBalancers": "10.0.64.0/24"}}},
        "network.subnets",
        ["10.0.64.0/24", "overlaps"],
    ),
    (
        "pods overlap vcn",
        {"cluster": {"cni": "flannel", "podsCidr": "10.0.128.0/17"}, "streaming": RELAY_TO_ALL_PODS},
        "cluster.podsCidr",
        ["10.0.128.0/17", "overlaps the VCN"],
    ),
    (
        "stream pods overlap workers",
        {"network": {"subnets": {"streamPods": "10.0.64.0/20"}}},
        "network.subnets.streamPods",
        ["10.0.64.0/20", "overlaps network.subnets.workers"],
    ),
    (
        "pod subnets overlap",
        {"network": {"subnets": {"pods": "10.0.128.0/17"}}},
        "network.subnets.streamPods",
        ["10.0.192.0/19", "overlaps network.subnets.pods"],
    ),
    (
        "pod subnet outside vcn",
        {"network": {"subnets": {"pods": "10.1.0.0/18"}}},
        "network.subnets.pods",
        ["10.1.0.0/18", "not inside the VCN"],
    ),
    (
        "stream pod subnet smaller than one node",
        {"network": {"subnets": {"streamPods": "10.0.192.0/27"}}},
        "network.subnets.streamPods",
        ["10.0.192.0/27", "29 pod addresses", "31"],
    ),
    (
        "stream pod subnet smaller than the autoscaled pool",
        {"network": {"subnets": {"streamPods": "10.0.192.0/24"}}, "nodePools": {"gpu": {"minSize": 1, "maxSize": 9}}},
        "network.subnets.streamPods",
        ["253 pod addresses", "279", "9 node(s) of the gpu pool"],
    ),
    (
        "system pod subnet too small",
        {"network": {"subnets": {"pods": "10.0.128.0/26"}}},
        "network.subnets.pods",
        ["61 pod addresses", "93", "default/turn"],
    ),
    (
        "pod subnet with flannel",
        {
            "cluster": {"cni": "flannel"},
            "network": {"subnets": {"streamPods": "10.0.192.0/20"}},
            "streaming": RELAY_TO_ALL_PODS,
        },
        "network.subnets.streamPods",
        ["only used with cluster.cni: vcnNative"],
    ),
    (
        "pods cidr with vcn-native pods",
        {"cluster": {"podsCidr": "10.244.0.0/16"}},
        "cluster.podsCidr",
        ["only used with cluster.cni: flannel"],
    ),
    (
        "streaming on flannel without the opt-in",
        {"cluster": {"cni": "flannel"}},
        "cluster.cni",
        ["flannel", "every pod", "allowRelayToAllPods: true"],
    ),
    (
        "relay opt-in with vcn-native pods",
        {"streaming": RELAY_TO_ALL_PODS},
        "streaming.turn.allowRelayToAllPods",
        ["only applies to cluster.cni: flannel"],
    ),
    (
        "turn capacity below one session",
        {"streaming": {"turn": {"capacityBytesPerSecond": 1000}}},
        "streaming.turn.capacityBytesPerSecond",
        ["1000", "maxBytesPerSecond (6250000)"],
    ),
    (
        "coturn older than 4.9",
        {"streaming": {"images": {"coturn": "docker.io/coturn/coturn:4.7.0-r2"}}},
        "streaming.images.coturn",
        ["4.7.0-r2", "older than coturn 4.9"],
    ),
    (
        "a key the ICE config service had",
        {"streaming": {"turn": {"credentialsPerMinute": 30}}},
        "streaming.turn.credentialsPerMinute",
        ["unknown key", "credentialTtlSeconds"],
    ),
    ("unreal version", {"streaming": {"unrealVersion": "4.27"}}, "streaming.unrealVersion", ["4.27", "5.6, 5.7"]),
    ("environment", {"environment": "prod"}, "environment", ["prod", "production"]),
    (
        "auth mode",
        {"streaming": {"players": {"auth": {"mode": "password"}}}},
        "streaming.players.auth.mode",
        ["password"],
    ),
    (
        "oidc without its settings",
        {"streaming": {"players": {"auth": {"mode": "oidc"}}}},
        "streaming.players.auth.oidc",
        ["issuerUrl", "clientId", "clientSecret"],
    ),
    (
        "oidc without a host",
        {
            "streaming": {
                "players": {
                    "auth": {
                        "mode": "oidc",
                        "oidc": {"issuerUrl": "https://idp.example", "clientId": "game", "clientSecret": "s"},
                    }
                }
            }
        },
        "streaming.ingress.host",
        ["required", "https://<host>/oauth2/callback"],
    ),
    (
        "oidc issuer without TLS",
        {
            "streaming": {
                "ingress": {"host": "play.example.com"},
                "players": {
                    "auth": {
                        "mode": "oidc",
                        "oidc": {"issuerUrl": "http://idp.example", "clientId": "game", "clientSecret": "s"},
                    }
                },
            }
        },
        "streaming.players.auth.oidc.issuerUrl",
        ["http://idp.example", "https://"],
    ),
    (
        "oidc without the openid scope",
        {
            "streaming": {
                "ingress": {"host": "play.example.com"},
                "players": {
                    "auth": {
                        "mode": "oidc",
                        "oidc": {
                            "issuerUrl": "https://idp.example",
                            "clientId": "game",
                            "clientSecret": "s",
                            "scopes": ["email"],
                        },
                    }
                },
            }
        },
        "streaming.players.auth.oidc.scopes",
        ["email", "openid"],
    ),
    (
        "oidc settings without oidc",
        {
            "streaming": {
                "players": {
                    "auth": {
                        "mode": "signedLinks",
                        "oidc": {"issuerUrl": "https://i.example", "clientId": "g", "clientSecret": "s"},
                    }
                }
            }
        },
        "streaming.players.auth.oidc",
        ["signedLinks", "mode: oidc"],
    ),
    (
        "launch links living a day",
        {"streaming": {"players": {"auth": {"signedLinks": {"maxLifetimeSeconds": 86400}}}}},
        "streaming.players.auth.signedLinks.maxLifetimeSeconds",
        ["86400", "30-3600"],
    ),
    (
        "launch link keys over plain HTTP",
        {"streaming": {"players": {"auth": {"signedLinks": {"jwksUrl": "http://portal.example/jwks"}}}}},
        "streaming.players.auth.signedLinks.jwksUrl",
        ["http://portal.example/jwks", "https://"],
    ),
    (
        "empty waiting room",
        {"streaming": {"players": {"queue": {"maxPlayers": 0}}}},
        "streaming.players.queue.maxPlayers",
        ["0", "1-100000"],
    ),
    (
        "no joins",
        {"streaming": {"players": {"rateLimits": {"joinsPerMinute": 0}}}},
        "streaming.players.rateLimits.joinsPerMinute",
        ["0", "1-10000"],
    ),
    (
        "more sessions than a TURN node holds",
        {"streaming": {"autoscaling": {"maxReplicas": 40}}},
        "streaming.turn.capacityBytesPerSecond",
        ["250000000", "40 allocations", "160", "40 streams (every build's maxReplicas)", "userQuota 4"],
    ),
    (
        "two builds whose maxReplicas together are more sessions than a TURN node holds",
        {"streaming": {"autoscaling": {"maxReplicas": 6}, "builds": [BUILD, {**CANARY, "maxReplicas": 5}]}},
        "streaming.turn.capacityBytesPerSecond",
        ["40 allocations", "44", "11 streams"],
    ),
    (
        "a build name that cannot name a Deployment",
        {"streaming": {"builds": [{**BUILD, "name": "Main_1"}]}},
        "streaming.builds[0].name",
        ["'Main_1' is not a build name", "at most 20"],
    ),
    (
        "a buffer on a build at weight 0",
        {"streaming": {"builds": [{**BUILD, "name": "old", "weight": 0, "bufferStreams": 1}, BUILD]}},
        "streaming.builds[0].bufferStreams",
        ["1 at weight 0", "only the streams in use"],
    ),
    (
        "a negative buffer on a build",
        {"streaming": {"builds": [{**BUILD, "bufferStreams": -1}]}},
        "streaming.builds[0].bufferStreams",
        ["-1 is outside 0-2147483647"],
    ),
    (
        "a minimum for a build that takes nobody",
        {"streaming": {"builds": [BUILD, {**CANARY, "weight": 0, "minReplicas": 3}]}},
        "streaming.builds[1].minReplicas",
        ["3 at weight 0"],
    ),
    (
        "a build listed twice",
        {"streaming": {"builds": [BUILD, {**CANARY, "name": "main"}]}},
        "streaming.builds[1].name",
        ["main is listed twice"],
    ),
    (
        "a build whose image is no reference",
        {"streaming": {"builds": [{**BUILD, "image": "registry.example/game 1.4"}]}},
        "streaming.builds[0].image",
        ["registry.example/game 1.4"],
    ),
    (
        "a build of an unsupported Unreal Engine",
        {"streaming": {"builds": [BUILD, {**CANARY, "unrealVersion": "5.3"}]}},
        "streaming.builds[1].unrealVersion",
        ["5.3 is not a supported", "5.6, 5.7"],
    ),
    (
        "every build at weight 0",
        {"streaming": {"builds": [{**BUILD, "weight": 0}, {**CANARY, "weight": 0}]}},
        "streaming.builds",
        ["every weight is 0"],
    ),
    (
        "a negative weight",
        {"streaming": {"builds": [{**BUILD, "weight": -1}]}},
        "streaming.builds[0].weight",
        ["-1"],
    ),
    (
        "a build's minimum above its maximum",
        {"streaming": {"builds": [{**BUILD, "minReplicas": 4, "maxReplicas": 2}]}},
        "streaming.builds[0].minReplicas",
        ["4 is above the build's maxReplicas (2)"],
    ),
    (
        "images.unreal beside builds",
        {"streaming": {"images": {"unreal": BUILD["image"]}, "builds": [BUILD]}},
        "streaming.images.unreal",
        ["beside streaming.builds"],
    ),
    (
        "more builds than run side by side",
        {"streaming": {"builds": [{**BUILD, "name": f"b{i}"} for i in range(5)]}},
        "streaming.builds",
        ["lists 5 builds", "at most 4"],
    ),
    (
        "TURN over TLS on the site's own name",
        {"streaming": {"ingress": {"host": "play.example.com"}, "turn": {"tls": {"host": "play.example.com"}}}},
        "streaming.turn.tls.host",
        ["play.example.com", "turn.play.example.com"],
    ),
    (
        "TURN over TLS without certificates",
        {"addons": {"certManager": {"enabled": False}}, "streaming": {"turn": {"tls": {"host": "turn.example.com"}}}},
        "streaming.turn.tls.host",
        ["addons.certManager"],
    ),
    ("turn quota of a crowd", {"streaming": {"turn": {"userQuota": 100}}}, "streaming.turn.userQuota", ["100", "3-16"]),
    (
        "services overlap vcn",
        {"cluster": {"servicesCidr": "10.0.0.0/12"}},
        "cluster.servicesCidr",
        ["10.0.0.0/12", "overlaps the VCN"],
    ),
    (
        "services overlap pods",
        {"cluster": {"cni": "flannel", "servicesCidr": "10.244.0.0/20"}, "streaming": RELAY_TO_ALL_PODS},
        "cluster.servicesCidr",
        ["10.244.0.0/20", "podsCidr"],
    ),
    (
        "relay min above max",
        {"network": {"relayPorts": {"min": 60000, "max": 50000}}},
        "network.relayPorts",
        ["60000-50000"],
    ),
    (
        "relay below 1024",
        {"network": {"relayPorts": {"min": 80, "max": 2000}}},
        "network.relayPorts",
        ["80-2000", "1024-65535"],
    ),
    ("relay above 65535", {"network": {"relayPorts": {"max": 70000}}}, "network.relayPorts", ["70000", "1024-65535"]),
    (
        "relay over nodeports",
        {"network": {"relayPorts": {"min": 30000, "max": 40000}}},
        "network.relayPorts",
        ["30000-40000", "NodePort"],
    ),
    (
        "relay not a number",
        {"network": {"relayPorts": {"min": "low"}}},
        "network.relayPorts.min",
        ["low", "whole number"],
    ),
    (
        "unknown shape",
        {"nodePools": {"default": {"shape": "VM.Standard.X9.Flex"}}},
        "nodePools.default.shape",
        ["VM.Standard.X9.Flex", "known shapes"],
    ),
    (
        "gpu without nvenc",
        {"nodePools": GPU},
        "nodePools.gpu.shape",
        ["BM.GPU.H100.8", "NVENC", "VM.GPU.A10.1"],
    ),
    (
        "gpu pool not a gpu",
        {"nodePools": {"gpu": {"shape": "VM.Standard.E4.Flex", "ocpus": 2, "memoryGbs": 16}}},
        "nodePools.gpu.shape",
        ["VM.Standard.E4.Flex", "not a GPU shape"],
    ),
    (
        "gpu shape in turn pool",
        {"nodePools": {"turn": {"shape": "VM.GPU.A10.1"}}},
        "nodePools.turn.shape",
        ["VM.GPU.A10.1", "GPU shape"],
    ),
    (
        "flex without ocpus",
        {"nodePools": {"default": {"ocpus": None, "memoryGbs": None}}},
        "nodePools.default.shape",
        ["VM.Standard.E4.Flex", "ocpus and memoryGbs"],
    ),
    (
        "too many ocpus",
        {"nodePools": {"default": {"ocpus": 65, "memoryGbs": 128}}},
        "nodePools.default.ocpus",
        ["65", "1-64"],
    ),
    (
        "memory per ocpu",
        {"nodePools": {"turn": {"ocpus": 1, "memoryGbs": 128}}},
        "nodePools.turn.memoryGbs",
        ["memoryGbs 128", "64 GB per OCPU"],
    ),
    (
        "ocpus on fixed shape",
        {"nodePools": {"gpu": {"shape": "VM.GPU.A10.1", "ocpus": 4}}},
        "nodePools.gpu.ocpus",
        ["fixed shape"],
    ),
    (
        "size above max",
        {"nodePools": {"gpu": {"size": 9, "minSize": 1, "maxSize": 8}}},
        "nodePools.gpu.size",
        ["9", "minSize (1)", "maxSize (8)"],
    ),
    (
        "min above max",
        {"nodePools": {"gpu": {"size": 2, "minSize": 3, "maxSize": 2}}},
        "nodePools.gpu.size",
        ["minSize (3)"],
    ),
    ("max without min", {"nodePools": {"gpu": {"maxSize": 4}}}, "nodePools.gpu.minSize", ["minSize and maxSize"]),
    ("empty turn pool", {"nodePools": {"turn": {"size": 0}}}, "nodePools.turn.size", ["0", "below 1"]),
    (
        "ad index 0",
        {"nodePools": {"default": {"availabilityDomains": [0]}}},
        "nodePools.default.availabilityDomains",
        ["0", "1-3"],
    ),
    (
        "ad index 4",
        {"nodePools": {"gpu": {"availabilityDomains": [1, 4]}}},
        "nodePools.gpu.availabilityDomains",
        ["4", "1-3"],
    ),
    (
        "ad twice",
        {"nodePools": {"gpu": {"availabilityDomains": [2, 2]}}},
        "nodePools.gpu.availabilityDomains",
        ["[2, 2]", "twice"],
    ),
    ("no ads", {"nodePools": {"gpu": {"availabilityDomains": []}}}, "nodePools.gpu.availabilityDomains", ["[]"]),
    (
        "bad fault domain",
        {"nodePools": {"default": {"faultDomains": ["FAULT-DOMAIN-4"]}}},
        "nodePools.default.faultDomains",
        ["FAULT-DOMAIN-4", "FAULT-DOMAIN-1"],
    ),
    (
        "boot volume too small",
        {"nodePools": {"default": {"bootVolumeGbs": 20}}},
        "nodePools.default.bootVolumeGbs",
        ["20", "50"],
    ),
    (
        "image not an ocid",
        {"nodePools": {"gpu": {"imageId": "latest"}}},
        "nodePools.gpu.imageId",
        ["latest", "image OCID"],
    ),
    (
        "k8s version format",
        {"cluster": {"kubernetesVersion": "1.34"}},
        "cluster.kubernetesVersion",
        ["1.34", "v1.34.2"],
    ),
    ("cluster type", {"cluster": {"type": "ADVANCED"}}, "cluster.type", ["ADVANCED", "ENHANCED", "BASIC"]),
    ("cni", {"cluster": {"cni": "cilium"}}, "cluster.cni", ["cilium", "flannel", "vcnNative"]),
    (
        "world-open api",
        {"cluster": {"endpoint": {"public": True, "allowedCidrs": ["0.0.0.0/0"]}}},
        "cluster.endpoint.allowedCidrs",
        ["0.0.0.0/0", "allowWorldAccess"],
    ),
    (
        "public api without cidrs",
        {"cluster": {"endpoint": {"public": True}}},
        "cluster.endpoint.allowedCidrs",
        ["public endpoint"],
    ),
    ("bad client cidr", {"network": {"clientCidrs": ["everyone"]}}, "network.clientCidrs[0]", ["everyone"]),
    ("no client cidrs", {"network": {"clientCidrs": []}}, "network.clientCidrs", ["[]"]),
    ("pools not a mapping", {"nodePools": ["gpu"]}, "nodePools", ["mapping"]),
    (
        "public not a bool",
        {"cluster": {"endpoint": {"public": "maybe"}}},
        "cluster.endpoint.public",
        ["maybe", "true or false"],
    ),
    (
        "unknown addon",
        {"addons": {"grafana": {"enabled": True}}},
        "addons.grafana",
        ["unknown key", "ingressNginx", "gpuPlugin"],
    ),
    (
        "bandwidth min above max",
        {"addons": {"ingressNginx": {"minBandwidthMbps": 400, "maxBandwidthMbps": 100}}},
        "addons.ingressNginx.minBandwidthMbps",
        ["400", "maxBandwidthMbps (100)"],
    ),
    (
        "bandwidth too high",
        {"addons": {"ingressNginx": {"maxBandwidthMbps": 9000}}},
        "addons.ingressNginx.maxBandwidthMbps",
        ["9000", "8000"],
    ),
    (
        "load balancer kind",
        {"addons": {"ingressNginx": {"loadBalancer": "classic"}}},
        "addons.ingressNginx.loadBalancer",
        ["classic", "flexible", "network"],
    ),
    (
        "acme email",
        {"addons": {"certManager": {"email": "ops-at-example"}}},
        "addons.certManager.email",
        ["ops-at-example"],
    ),
    (
        "retention",
        {"addons": {"monitoring": {"retention": "two weeks"}}},
        "addons.monitoring.retention",
        ["two weeks", "15d"],
    ),
    ("prometheus volume", {"addons": {"monitoring": {"storageGbs": 20}}}, "addons.monitoring.storageGbs", ["20", "50"]),
    (
        "alert minutes",
        {"addons": {"monitoring": {"alerts": {"queuedMinutes": 0}}}},
        "addons.monitoring.alerts.queuedMinutes",
        ["0", "1-1440"],
    ),
    (
        "gpu temperature threshold",
        {"addons": {"monitoring": {"alerts": {"gpuTemperatureCelsius": 200}}}},
        "addons.monitoring.alerts.gpuTemperatureCelsius",
        ["200", "40-110"],
    ),
    (
        "unknown alert threshold",
        {"addons": {"monitoring": {"alerts": {"queuedPlayer": 3}}}},
        "addons.monitoring.alerts.queuedPlayer",
        ["unknown key", "queuedPlayers"],
    ),
    (
        "alert receiver type",
        {"addons": {"monitoring": {"alertReceiver": {"type": "email", "url": "https://alerts.example.org/x"}}}},
        "addons.monitoring.alertReceiver.type",
        ["email", "webhook", "slack"],
    ),
    (
        "alert receiver url",
        {"addons": {"monitoring": {"alertReceiver": {"type": "webhook", "url": "alerts.example.org/hook"}}}},
        "addons.monitoring.alertReceiver.url",
        ["not an http:// or https:// URL"],
    ),
    (
        "slack channel on a webhook",
        {
            "addons": {
                "monitoring": {
                    "alertReceiver": {"type": "webhook", "url": "https://alerts.example.org/x", "channel": "#ops"}
                }
            }
        },
        "addons.monitoring.alertReceiver.channel",
        ["#ops", "slack"],
    ),
    (
        "gpu exporter without monitoring",
        {
            "addons": {"monitoring": {"enabled": False}},
            "streaming": {"enabled": False},
        },
        "addons.dcgmExporter.enabled",
        ["addons.monitoring"],
    ),
    (
        "the custom metrics adapter, removed",
        {"addons": {"prometheusAdapter": {"enabled": True}}},
        "addons.prometheusAdapter",
        ["removed: nothing reads custom metrics", "allowed here: clusterAutoscaler"],
    ),
    (
        "streams per gpu",
        {"addons": {"gpuPlugin": {"streamsPerGpu": 0}}},
        "addons.gpuPlugin.streamsPerGpu",
        ["0", "1-64"],
    ),
    (
        "time slicing with the oke add-on",
        {"addons": {"gpuPlugin": {"owner": "okeAddon", "streamsPerGpu": 2}}},
        "addons.gpuPlugin.streamsPerGpu",
        ["2", "owner: chart"],
    ),
    (
        "plugin owner",
        {"addons": {"gpuPlugin": {"owner": "operator"}}},
        "addons.gpuPlugin.owner",
        ["operator", "chart", "okeAddon"],
    ),
    ("gpu plugin on basic", {"cluster": {"type": "BASIC"}}, "addons.gpuPlugin.enabled", ["ENHANCED", "enabled: false"]),
    (
        "chart version",
        {"addons": {"monitoring": {"version": "latest"}}},
        "addons.monitoring.version",
        ["latest", "1.2.3"],
    ),
    (
        "chart repository",
        {"addons": {"certManager": {"repository": "ftp://mirror/charts"}}},
        "addons.certManager.repository",
        ["ftp://mirror/charts", "https://"],
    ),
    ("namespace", {"streaming": {"namespace": "Pixel_Streams"}}, "streaming.namespace", ["Pixel_Streams", "DNS label"]),
    (
        "unknown image",
        {"streaming": {"images": {"ue5": "registry.example/ue5:1.0"}}},
        "streaming.images.ue5",
        ["unreal", "coturn"],
    ),
    (
        "unpinned image",
        {"streaming": {"images": {"unreal": "registry.example/game"}}},
        "streaming.images.unreal",
        ["registry.example/game", "tag or digest"],
    ),
    (
        "pull secret",
        {"streaming": {"imagePullSecrets": ["OCIR Secret"]}},
        "streaming.imagePullSecrets[0]",
        ["OCIR Secret"],
    ),
    (
        "credential ttl",
        {"streaming": {"turn": {"credentialTtlSeconds": 86400}}},
        "streaming.turn.credentialTtlSeconds",
        ["86400", "60-3600"],
    ),
    ("realm", {"streaming": {"turn": {"realm": "my realm"}}}, "streaming.turn.realm", ["my realm"]),
    ("cpu quantity", {"streaming": {"streamer": {"cpu": "four"}}}, "streaming.streamer.cpu", ["four", "3750m"]),
    (
        "memory quantity",
        {"streaming": {"streamer": {"memoryLimit": "16GB"}}},
        "streaming.streamer.memoryLimit",
        ["16GB", "8Gi"],
    ),
    ("frame rate", {"streaming": {"streamer": {"maxFps": 500}}}, "streaming.streamer.maxFps", ["500", "1-240"]),
    (
        "unreal argument",
        {"streaming": {"streamer": {"extraArgs": ["rm -rf /"]}}},
        "streaming.streamer.extraArgs[0]",
        ["rm -rf /"],
    ),
    (
        "gpu mode",
        {"streaming": {"streamer": {"gpuMode": "mig"}}},
        "streaming.streamer.gpuMode",
        ["mig", "whole", "timeSliced", "cpuPacked"],
    ),
    (
        "time sliced without sharing",
        {"streaming": {"streamer": {"gpuMode": "timeSliced"}}},
        "streaming.streamer.gpuMode",
        ["timeSliced", "streamsPerGpu"],
    ),
    (
        "whole gpus while shared",
        {"addons": {"gpuPlugin": {"streamsPerGpu": 4}}},
        "streaming.streamer.gpuMode",
        ["whole", "streamsPerGpu is 4"],
    ),
    (
        "replicas",
        {"streaming": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
        "streaming.autoscaling.minReplicas",
        ["5", "maxReplicas (2)"],
    ),
    (
        "the pool ratio, removed",
        {"streaming": {"autoscaling": {"targetPoolRatio": 0.6}}},
        "streaming.autoscaling.targetPoolRatio",
        ["removed", "in-use + bufferStreams", "allowed here: minReplicas, maxReplicas, bufferStreams, scaleDown"],
    ),
    (
        "a negative buffer",
        {"streaming": {"autoscaling": {"bufferStreams": -1}}},
        "streaming.autoscaling.bufferStreams",
        ["-1 is outside 0-2147483647"],
    ),
    (
        "a scale-down window past an hour",
        {"streaming": {"autoscaling": {"scaleDown": {"stabilizationSeconds": 3601}}}},
        "streaming.autoscaling.scaleDown.stabilizationSeconds",
        ["3601 is outside 0-3600"],
    ),
    (
        "host",
        {"streaming": {"ingress": {"host": "https://play.example.com/"}}},
        "streaming.ingress.host",
        ["https://play.example.com/"],
    ),
    (
        "path prefix",
        {"streaming": {"ingress": {"pathPrefix": "pixel/"}}},
        "streaming.ingress.pathPrefix",
        ["pixel/", "/pixel"],
    ),
    (
        "issuer",
        {"streaming": {"ingress": {"issuer": "acme"}}},
        "streaming.ingress.issuer",
        ["acme", "letsencrypt-prod"],
    ),
    (
        "streaming without ingress controller",
        {"addons": {"ingressNginx": {"enabled": False}}},
        "addons.ingressNginx.enabled",
        ["streaming.enabled: false"],
    ),
    (
        "warm streams",
        {"streaming": {"capacity": {"warmStreams": -1}}},
        "streaming.capacity.warmStreams",
        ["-1", "0-64"],
    ),
    (
        "pre-pull not a bool",
        {"streaming": {"capacity": {"prePull": "sometimes"}}},
        "streaming.capacity.prePull",
        ["sometimes", "true or false"],
    ),
    (
        "autoscaler auth",
        {"addons": {"clusterAutoscaler": {"authType": "user"}}},
        "addons.clusterAutoscaler.authType",
        ["user", "workload", "instance"],
    ),
    (
        "instance principal without its group",
        {"addons": {"clusterAutoscaler": {"authType": "instance"}}},
        "addons.clusterAutoscaler.dynamicGroup",
        ["is missing", "dynamic group", "authType workload"],
    ),
    (
        "dynamic group",
        {"addons": {"clusterAutoscaler": {"authType": "instance", "dynamicGroup": "my group; drop"}}},
        "addons.clusterAutoscaler.dynamicGroup",
        ["my group; drop", "id ocid1.dynamicgroup"],
    ),
    (
        "scan interval",
        {"addons": {"clusterAutoscaler": {"scanIntervalSeconds": 0}}},
        "addons.clusterAutoscaler.scanIntervalSeconds",
        ["0", "1-600"],
    ),
    (
        "scale-down delay",
        {"addons": {"clusterAutoscaler": {"scaleDownUnneededSeconds": -5}}},
        "addons.clusterAutoscaler.scaleDownUnneededSeconds",
        ["-5", "0-86400"],
    ),
    (
        "autoscaler add-on version",
        {"addons": {"clusterAutoscaler": {"addonVersion": "latest"}}},
        "addons.clusterAutoscaler.addonVersion",
        ["latest", "v1.34.0-1"],
    ),
    (
        "autoscaled pool on a basic cluster",
        {"cluster": {"type": "BASIC"}, "addons": {"gpuPlugin": {"enabled": False}}, "nodePools": {"gpu": AUTOSCALED}},
        "addons.clusterAutoscaler.enabled",
        ["ENHANCED", "nodePools.gpu", "enabled: false"],
    ),
]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value is REMOVE:
            merged.pop(key, None)
        elif isinstance(value, dict):
            merged[key] = _merge({}, value)
        else:
            merged[key] = value
    return merged


# An existing cluster (cluster.target: existing) as the onprem stack has one, without the OKE node pools.
KUBECONFIG = "apiVersion: v1\nclusters: [{name: c, cluster: {server: 'https://k.example:6443'}}]\nusers: [{name: u}]\n"


def existing(**existing_keys: Any) -> dict[str, Any]:
    keys = {"kubeconfig": KUBECONFIG, "nodeCidrs": ["192.168.50.0/24"], "streamPodCidrs": ["10.244.128.0/20"]}
    keys.update(existing_keys)
    return {"nodePools": REMOVE, "cluster": {"target": "existing", "kubernetesVersion": "v1.33.1", "existing": keys}}


VPN = {"cidrs": ["192.168.0.0/16"], "cpeIpAddress": "198.51.100.20"}
BGP = {
    **VPN,
    "routing": "bgp",
    "customerBgpAsn": 65010,
    "bgpTunnels": [
        {"customerInterfaceIp": "169.254.10.2/30", "oracleInterfaceIp": "169.254.10.1/30"},
        {"customerInterfaceIp": "169.254.10.6/30", "oracleInterfaceIp": "169.254.10.5/30"},
    ],
}
EXTERNAL_KAFKA = {"mode": "external", "bootstrapServers": "k.example:9093", "username": "jobs", "password": "pw-123"}
JOB = {"image": "registry.example/render:1.0"}


def jobs(**keys: Any) -> dict[str, Any]:
    return {"jobs": {"enabled": True, "types": {"render": JOB}, **keys}}


INVALID += [
    (
        "existing cluster keys on OKE",
        {"cluster": {"existing": {"nodeCidrs": ["192.168.50.0/24"]}}},
        "cluster.existing.nodeCidrs",
        ["only used with cluster.target: existing"],
    ),
    (
        "existing cluster with a VCN",
        _merge(existing(), {"network": {"vcnCidr": "10.1.0.0/16"}}),
        "network.vcnCidr",
        ["configures OKE", "remove it"],
    ),
    (
        "existing cluster with players' networks",
        _merge(existing(), {"network": {"clientCidrs": ["203.0.113.0/24"]}}),
        "network.clientCidrs",
        ["configures OKE"],
    ),
    (
        "existing cluster with the autoscaler add-on",
        _merge(existing(), {"addons": {"clusterAutoscaler": {"scanIntervalSeconds": 20}}}),
        "addons.clusterAutoscaler",
        ["existing cluster scales its nodes itself"],
    ),
    (
        "existing cluster with OKE's GPU add-on",
        _merge(existing(), {"addons": {"gpuPlugin": {"owner": "okeAddon"}}}),
        "addons.gpuPlugin.owner",
        ["configures OKE"],
    ),
    (
        "existing cluster with kubeconfig and stack",
        existing(stackReference="acme/cluster/prod"),
        "cluster.existing.kubeconfig",
        ["exactly one of kubeconfig", "stackReference"],
    ),
    (
        "existing cluster without a way in",
        existing(kubeconfig=REMOVE),
        "cluster.existing.kubeconfig",
        ["exactly one of"],
    ),
    (
        "kubeconfig that is not one",
        existing(kubeconfig="token: very-secret-kube-token"),
        "cluster.existing.kubeconfig",
        ["(secret, not shown) is not a kubeconfig"],
    ),
    (
        "stack reference",
        existing(kubeconfig=REMOVE, stackReference="a/b/c/d"),
        "cluster.existing.stackReference",
        ["a/b/c/d", "organization"],
    ),
    (
        "existing cluster too old",
        _merge(existing(), {"cluster": {"kubernetesVersion": "v1.29.9"}}),
        "cluster.kubernetesVersion",
        ["v1.29.9", "v1.30.x to v1.34.x"],
    ),
    (
        "existing cluster without node networks",
        existing(nodeCidrs=[]),
        "cluster.existing.nodeCidrs",
        ["[] is empty", "relay must never reach"],
    ),
    (
        "node network overlapping the pods",
        existing(nodeCidrs=["10.244.0.0/24"]),
        "cluster.existing.nodeCidrs[0]",
        ["10.244.0.0/24 overlaps cluster.podsCidr"],
    ),
    (
        "stream pods outside the pods",
        existing(streamPodCidrs=["10.250.0.0/20"]),
        "cluster.existing.streamPodCidrs[0]",
        ["10.250.0.0/20 is not inside cluster.podsCidr (10.244.0.0/16)"],
    ),
    (
        "streaming on an existing cluster that cannot tell stream pods apart",
        existing(streamPodCidrs=[]),
        "cluster.existing.streamPodCidrs",
        ["allowRelayToAllPods: true", "every pod"],
    ),
    (
        "relay opt-in where stream pods have their own range",
        _merge(existing(), {"streaming": RELAY_TO_ALL_PODS}),
        "streaming.turn.allowRelayToAllPods",
        ["existing cluster without streamPodCidrs"],
    ),
    (
        "GPU nodes without labels",
        existing(nodes={"gpu": {"labels": {}}}),
        "cluster.existing.nodes.gpu.labels",
        ["any node"],
    ),
    (
        "node label",
        existing(nodes={"turn": {"labels": {"bad key!": "x"}}}),
        "cluster.existing.nodes.turn.labels",
        ["'bad key!' is not a Kubernetes label key"],
    ),
    (
        "node taint",
        existing(nodes={"gpu": {"labels": {"gpu": "yes"}, "taints": ["nvidia.com/gpu=present:Sometimes"]}}),
        "cluster.existing.nodes.gpu.taints[0]",
        ["Sometimes", "key=value:Effect"],
    ),
    (
        "on-premises keys without networks",
        {"network": {"onPremises": {"cpeIpAddress": "198.51.100.20"}}},
        "network.onPremises.cpeIpAddress",
        ["needs network.onPremises.cidrs"],
    ),
    (
        "on-premises network overlapping the pods on flannel",
        {
            "cluster": {"cni": "flannel"},
            "streaming": RELAY_TO_ALL_PODS,
            "network": {"onPremises": {**VPN, "cidrs": ["10.244.0.0/16"]}},
        },
        "network.onPremises.cidrs[0]",
        ["overlaps cluster.podsCidr (10.244.0.0/16)"],
    ),
    (
        "on-premises everything",
        {"network": {"onPremises": {**VPN, "cidrs": ["0.0.0.0/0"]}}},
        "network.onPremises.cidrs[0]",
        ["larger than /8"],
    ),
    (
        "VPN without the device",
        {"network": {"onPremises": {"cidrs": ["192.168.0.0/16"]}}},
        "network.onPremises.cpeIpAddress",
        ["is required", "public IP"],
    ),
    (
        "VPN device with a private address",
        {"network": {"onPremises": {**VPN, "cpeIpAddress": "192.168.1.1"}}},
        "network.onPremises.cpeIpAddress",
        ["192.168.1.1 is not a public address"],
    ),
    (
        "one pre-shared key",
        {"network": {"onPremises": {**VPN, "sharedSecrets": ["abc"]}}},
        "network.onPremises.sharedSecrets",
        ["has 1", "one per tunnel (2)"],
    ),
    (
        "pre-shared key with symbols",
        {"network": {"onPremises": {**VPN, "sharedSecrets": ["ok key", "very-secret-psk!"]}}},
        "network.onPremises.sharedSecrets[1]",
        ["(secret, not shown)", "letters, digits and spaces"],
    ),
    (
        "BGP without an ASN",
        {"network": {"onPremises": {**BGP, "customerBgpAsn": REMOVE}}},
        "network.onPremises.customerBgpAsn",
        ["is required with routing: bgp"],
    ),
    (
        "BGP with Oracle's ASN",
        {"network": {"onPremises": {**BGP, "customerBgpAsn": 31898}}},
        "network.onPremises.customerBgpAsn",
        ["31898", "not Oracle's"],
    ),
    (
        "BGP with one tunnel",
        {"network": {"onPremises": {**BGP, "bgpTunnels": BGP["bgpTunnels"][:1]}}},
        "network.onPremises.bgpTunnels",
        ["has 1", "both tunnels"],
    ),
    (
        "BGP interfaces in two networks",
        {
            "network": {
                "onPremises": {
                    **BGP,
                    "bgpTunnels": [
                        {"customerInterfaceIp": "169.254.10.2/30", "oracleInterfaceIp": "169.254.20.1/30"},
                        BGP["bgpTunnels"][1],
                    ],
                }
            }
        },
        "network.onPremises.bgpTunnels[0].oracleInterfaceIp",
        ["one /30 or /31"],
    ),
    (
        "BGP interface too large",
        {
            "network": {
                "onPremises": {
                    **BGP,
                    "bgpTunnels": [
                        {"customerInterfaceIp": "169.254.10.2/24", "oracleInterfaceIp": "169.254.10.1/24"},
                        BGP["bgpTunnels"][1],
                    ],
                }
            }
        },
        "network.onPremises.bgpTunnels[0].customerInterfaceIp",
        ["169.254.10.2/24", "/30 or /31"],
    ),
    (
        "BGP addresses with static routing",
        {"network": {"onPremises": {**BGP, "routing": "static"}}},
        "network.onPremises.customerBgpAsn",
        ["only used with routing: bgp"],
    ),
    (
        "service port",
        {"network": {"onPremises": {**VPN, "services": [{"name": "kafka", "port": 9094, "endPort": 9092}]}}},
        "network.onPremises.services[0]",
        ["9094-9092"],
    ),
    ("jobs without a type", {"jobs": {"enabled": True}}, "jobs.types", ["no job type"]),
    (
        "job without an image",
        jobs(types={"render": {"gpus": 1}}),
        "jobs.types.render.image",
        ["is required", "tag or digest"],
    ),
    ("job type name", jobs(types={"Render_3D": JOB}), "jobs.types.Render_3D", ["'Render_3D'", "lowercase"]),
    (
        "more jobs than partitions",
        jobs(types={"render": {**JOB, "partitions": 2, "maxReplicas": 3}}),
        "jobs.types.render.maxReplicas",
        ["3 is above partitions (2)"],
    ),
    (
        "job env replacing the contract",
        jobs(types={"render": {**JOB, "env": {"KAFKA_TOPIC": "other"}}}),
        "jobs.types.render.env.KAFKA_TOPIC",
        ["the stack sets", "KAFKA_TOPIC"],
    ),
    (
        "job memory above its limit",
        jobs(types={"render": {**JOB, "memory": "32Gi"}}),
        "jobs.types.render.memory",
        ["32Gi is above the limit memoryLimit (16Gi)"],
    ),
    (
        "jobs without GPUs",
        _merge(jobs(), {"addons": {"gpuPlugin": {"enabled": False}}}),
        "addons.gpuPlugin.enabled",
        ["no GPU to request"],
    ),
    (
        "two GPUs per job on time-sliced GPUs",
        _merge(
            jobs(types={"render": {**JOB, "gpus": 2}}),
            {"addons": {"gpuPlugin": {"streamsPerGpu": 2}}, "streaming": {"streamer": {"gpuMode": "timeSliced"}}},
        ),
        "jobs.types.render.gpus",
        ["time-sliced"],
    ),
    (
        "jobs in the streaming namespace",
        jobs(namespace="pixel"),
        "jobs.namespace",
        ["pixel is streaming.namespace too"],
    ),
    ("jobs in KEDA's namespace", jobs(namespace="keda"), "jobs.namespace", ["keda belongs"]),
    (
        "one topic for two job types",
        jobs(types={"render": {**JOB, "topic": "tasks"}, "replay": {**JOB, "topic": "tasks"}}),
        "jobs.types.replay.topic",
        ["tasks is already jobs.types.render.topic's topic"],
    ),
    (
        "external Kafka without servers",
        jobs(kafka={"mode": "external"}),
        "jobs.kafka.bootstrapServers",
        ["host:port", "mode: external"],
    ),
    (
        "external Kafka without a user",
        jobs(kafka={"mode": "external", "bootstrapServers": "k.example:9093"}),
        "jobs.kafka.username",
        ["is required with mode: external"],
    ),
    (
        "external Kafka without a password",
        jobs(kafka={"mode": "external", "bootstrapServers": "k.example:9093", "username": "jobs"}),
        "jobs.kafka.password",
        ["is required with mode: external", "pulumi config set --secret"],
    ),
    (
        "external Kafka without TLS",
        jobs(kafka={**EXTERNAL_KAFKA, "tls": False}),
        "jobs.kafka.tls",
        [],
    ),
    (
        "a job group inside the producer's",
        jobs(types={"producer": JOB}),
        "jobs.types.producer.consumerGroup",
        ["producer-jobs starts with 'producer'"],
    ),
    (
        "external Kafka CA that is no certificate",
        jobs(kafka={**EXTERNAL_KAFKA, "caCertificate": "not a pem"}),
        "jobs.kafka.caCertificate",
        ["not a PEM certificate"],
    ),
    (
        "a password for Strimzi's Kafka",
        jobs(kafka={"password": "kafka-password-123"}),
        "jobs.kafka.password",
        ["only used with mode: external"],
    ),
    (
        "Strimzi quorum of two",
        jobs(kafka={"strimzi": {"controllers": {"replicas": 2}}}),
        "jobs.kafka.strimzi.controllers.replicas",
        ["2 is not 1, 3 or 5"],
    ),
    (
        "workload identity off OKE",
        _merge(existing(), jobs(results={"access": "workloadIdentity"})),
        "jobs.results.access",
        ["OKE ENHANCED", "preAuthenticatedRequest"],
    ),
    (
        "results prefix",
        jobs(results={"prefix": "results"}),
        "jobs.results.prefix",
        ["'results'", "ending in /"],
    ),
    ("an empty topic", jobs(types={"render": {**JOB, "topic": ""}}), "jobs.types.render.topic", ["'' is not a topic"]),
    (
        "an empty consumer group",
        jobs(types={"render": {**JOB, "consumerGroup": ""}}),
        "jobs.types.render.consumerGroup",
        ["'' is not a consumer group"],
    ),
    (
        "cluster name on an existing cluster",
        _merge(existing(), {"cluster": {"name": "a:b"}}),
        "cluster.name",
        ["'a:b'", "1-32 lowercase letters"],
    ),
    (
        "replicas past int32",
        {"streaming": {"autoscaling": {"maxReplicas": 2**31}}},
        "streaming.autoscaling.maxReplicas",
        ["2147483648 is outside 1-2147483647"],
    ),
    (
        "coturn quota past a C int",
        {"streaming": {"turn": {"totalQuota": 2**31}}},
        "streaming.turn.totalQuota",
        ["2147483648 is outside 1-2147483647"],
    ),
    (
        "prometheus volume past the largest block volume",
        {"addons": {"monitoring": {"storageGbs": 40000}}},
        "addons.monitoring.storageGbs",
        ["40000 is outside 50-32768"],
    ),
]


def test_secrets_are_never_repeated_in_errors() -> None:
    for case, overrides, *_ in INVALID:
        if case in ("kubeconfig that is not one", "pre-shared key with symbols"):
            with pytest.raises(ConfigError) as caught:
                StackConfig.parse(invalid_raw(overrides))
            assert "very-secret" not in str(caught.value), case


def invalid_raw(overrides: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "compartmentId": COMPARTMENT,
        "nodePools": {"default": {"ocpus": 2, "memoryGbs": 32}, "turn": {"ocpus": 1, "memoryGbs": 8}},
    }
    return _merge(base, overrides)


@pytest.mark.parametrize(("case", "overrides", "path", "words"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_config_names_key_value_and_allowed(case: str, overrides: dict, path: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        StackConfig.parse(invalid_raw(overrides))
    message = str(caught.value)
    assert message.startswith(f"pixelstream:{path}"), message
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_basic_clusters_may_keep_fixed_pools_or_size_them_without_the_add_on() -> None:
    basic = {"cluster": {"type": "BASIC"}, "addons": {"gpuPlugin": {"enabled": False}}}
    StackConfig.parse(invalid_raw(basic))
    off = {"clusterAutoscaler": {"enabled": False}, "gpuPlugin": {"enabled": False}}
    StackConfig.parse(invalid_raw({**basic, "addons": off, "nodePools": {"gpu": AUTOSCALED}}))


def test_autoscaler_and_capacity_defaults() -> None:
    config = parse()
    autoscaler = config.addons.cluster_autoscaler
    assert autoscaler.enabled and autoscaler.auth_type == "workload"
    # Oracle's add-on defaults: scanInterval 10s, scaleDownDelayAfterAdd and scaleDownUnneededTime 10m; and
    # maxNodeProvisionTime at the 25m Oracle recommends for production (the add-on's own is 15m).
    assert autoscaler.settings() == {
        "auth_type": "workload",
        "dynamic_group": None,
        "addon_version": None,
        "timings": AutoscalerTimings(
            scan_interval_seconds=10,
            scale_down_delay_after_add_seconds=600,
            scale_down_unneeded_seconds=600,
            max_node_provision_seconds=1500,
        ),
    }
    assert config.streaming.capacity.warm_streams == 0 and config.streaming.capacity.pre_pull is True


def test_invalid_table_is_large_enough() -> None:
    assert len(INVALID) >= 15


def test_a_bad_receiver_url_is_never_repeated() -> None:
    url = "hooks.slack.com/services/T0/B0/very-secret-token"
    with pytest.raises(ConfigError) as caught:
        parse(addons={"monitoring": {"alertReceiver": {"type": "slack", "url": url}}})
    assert "very-secret-token" not in str(caught.value)


def test_alert_defaults_and_overrides() -> None:
    alerts = parse().addons.monitoring.alerts.thresholds()
    assert (alerts.queued_players, alerts.queued_minutes, alerts.gpu_temperature_celsius) == (0, 10, 85)
    assert parse().addons.monitoring.alert_receiver is None
    custom = parse(addons={"monitoring": {"alerts": {"turnNotReadyMinutes": 2}}}).addons.monitoring.alerts
    assert custom.thresholds().turn_not_ready_minutes == 2


def test_only_the_first_problem_is_spelled_out_with_a_count_of_the_rest() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(network={"vcnCidr": "x", "clientCidrs": ["y"]})
    assert str(caught.value).endswith("(and 1 more problem)")


def test_availability_domain_index_beyond_the_region() -> None:
    config = parse(nodePools={"gpu": {"availabilityDomains": [1, 3]}})
    assert config.availability_domain_names("gpu", ["AD-1", "AD-2", "AD-3"]) == ["AD-1", "AD-3"]
    with pytest.raises(ConfigError, match=r"nodePools\.gpu\.availabilityDomains: 3 .* has 1 \(allowed: 1-1\)"):
        config.availability_domain_names("gpu", ["AD-1"])


def test_world_api_access_needs_the_explicit_key() -> None:
    config = parse(cluster={"endpoint": {"public": True, "allowedCidrs": ["0.0.0.0/0"], "allowWorldAccess": True}})
    assert config.cluster.endpoint.allowed_cidrs == ["0.0.0.0/0"]


def _load(config: dict[str, str]) -> StackConfig:
    loaded: list[StackConfig] = []
    run_offline(lambda: loaded.append(load_stack_config()), project="pixelstream", config=config)
    return loaded[0]


def test_load_reads_the_namespace_and_its_objects() -> None:
    config = _load({"pixelstream:compartmentId": COMPARTMENT, "pixelstream:nodePools": '{"gpu": {"size": 3}}'})
    assert config.node_pools.gpu.size == 3


def test_load_rejects_an_unknown_top_level_key() -> None:
    with pytest.raises(
        ConfigError, match=r"^pixelstream:nodepools: unknown key; allowed: compartmentId, environment, network"
    ):
        _load({"pixelstream:compartmentId": COMPARTMENT, "pixelstream:nodepools": "{}"})


def test_load_rejects_a_structured_key_that_is_not_json() -> None:
    with pytest.raises(ConfigError, match=r"^pixelstream:network: is not valid"):
        _load({"pixelstream:compartmentId": COMPARTMENT, "pixelstream:network": "{not json"})


@pytest.mark.parametrize(
    ("reference", "refused"),
    [
        ("docker.io/coturn/coturn:4.9.0", False),
        ("docker.io/coturn/coturn:4.17.2-r0", False),
        ("docker.io/coturn/coturn:4.17-alpine", False),
        ("ghcr.io/coturn/coturn@sha256:" + "a" * 64, False),
        ("registry.example/mirror/coturn:edge-alpine", False),
        ("docker.io/coturn/coturn:4.8.9", True),
        ("docker.io/coturn/coturn:4.6-alpine", True),
        ("docker.io/coturn/coturn:4", True),
    ],
)
def test_coturn_must_be_4_9_or_newer_where_the_tag_says(reference: str, refused: bool) -> None:
    streaming = {"images": {"coturn": reference}}
    if refused:
        with pytest.raises(ConfigError, match=r"streaming\.images\.coturn: .*older than coturn 4\.9"):
            parse(streaming=streaming)
    else:
        assert parse(streaming=streaming).streaming.images["coturn"] == reference


def test_an_external_kafka_with_its_credentials_parses() -> None:
    """The Kafka cases above fail for the reason they name: with every credential given, the stack is valid."""
    StackConfig.parse(invalid_raw(jobs(kafka=EXTERNAL_KAFKA)))
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    StackConfig.parse(invalid_raw(jobs(kafka={**EXTERNAL_KAFKA, "saslMechanism": "PLAIN", "caCertificate": pem})))


def test_a_node_role_that_sets_only_its_taints_keeps_the_default_labels() -> None:
    """Each key of an existing cluster's node roles has its own default, as the reference shows it: naming the GPU
    nodes' taints alone still picks them by the project's label (it once left no label, and was refused)."""
    config = StackConfig.parse(invalid_raw(existing(nodes={"gpu": {"taints": ["gpu=yes:NoSchedule"]}})))
    gpu = config.cluster.existing.nodes.gpu
    assert gpu.labels == {"app.pixel/gpu": "true"} and gpu.taints == ["gpu=yes:NoSchedule"]
    assert config.cluster.existing.nodes.turn.taints == ["app.pixel/turn=true:NoSchedule"]
