"""The streaming namespace's NetworkPolicies: nothing in it takes a connection that these do not name.

- the session service: players' HTTP from the ingress controller, its metrics from Prometheus;
- the streams: their signalling port from the session service alone (and with it the streamer port, which no
  policy opens), Unreal's REST API from the pod proxy alone, and WebRTC media (UDP, any port: its ports are
  ephemeral, and WebRTC drops what belongs to no session) from anywhere;
- the pod proxy and the sign-in (oauth2-proxy): HTTP from the ingress controller;
- cert-manager's HTTP-01 solver: the challenge from the ingress controller.

The streams, which run the players' input through Unreal, reach DNS, the TURN nodes' listening port and relay
range (UDP) and the internet, never the cluster's own networks nor the node's metadata service. The TURN DaemonSet
runs on the host network, which NetworkPolicies do not govern (its NSG and coturn's peer lists do).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from ...constants import SESSION_SERVICE
from ..kubernetes import labels
from ..network_policies import (
    ANY_UDP,
    INGRESS_CONTROLLER,
    PROMETHEUS,
    allow_certificate_challenges,
    allow_ingress,
    deny_ingress,
    internet_egress,
    pods,
    relay_egress,
    tcp,
)
from .routing import POD_PROXY
from .sign_in import OAUTH2_PROXY
from .streaming import STREAM, UNREAL_REST_PORT


def streaming_network_policies(
    namespace: pulumi.Input[str],
    *,
    private_cidrs: Sequence[str],
    turn_nodes: Sequence[str],
    relay_ports: tuple[int, int],
    pod_proxy: bool,
    sign_in: bool,
    parent: pulumi.Resource,
) -> None:
    session, streams = labels(SESSION_SERVICE), labels(STREAM)
    deny_ingress(namespace, parent)
    allow_ingress("session-players", namespace, session, tcp("http"), [INGRESS_CONTROLLER], parent)
    allow_ingress("session-scrapes", namespace, session, tcp("metrics"), [PROMETHEUS], parent)
    allow_ingress("stream-signalling", namespace, streams, tcp("signalling"), [pods(session)], parent)
    allow_ingress("stream-media", namespace, streams, ANY_UDP, [], parent)
    if pod_proxy:
        allow_ingress("stream-rest-api", namespace, streams, tcp(UNREAL_REST_PORT), [pods(labels(POD_PROXY))], parent)
        allow_ingress("pod-proxy-operators", namespace, labels(POD_PROXY), tcp("http"), [INGRESS_CONTROLLER], parent)
    if sign_in:
        # The chart's pod label and port name: templates/_helpers.tpl and deployment.yaml at oauth2-proxy-10.7.0.
        signing_in = {"app.kubernetes.io/name": OAUTH2_PROXY}
        allow_ingress("sign-in-players", namespace, signing_in, tcp("http"), [INGRESS_CONTROLLER], parent)
    allow_certificate_challenges(namespace, parent)
    relay = [relay_egress(turn_nodes, relay_ports)]
    internet_egress("stream-egress", namespace, streams, private_cidrs, relay, parent)
