"""The platform's own alerts (a PrometheusRule through kube-prometheus-stack) and the optional Alertmanager
receiver they are sent to.

Sources of the series: the session service's metrics (scraped through its Service), kube-state-metrics (each
build's stream Deployment, the TURN DaemonSet, the session service's Deployment) and dcgm-exporter (GPU
XID errors and temperature, labelled `Hostname` and `gpu`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from ..constants import BUILD_METRIC_LABEL, SESSION_SERVICE, STREAM_BUILD_DEPLOYMENTS, TURN_DAEMONSET

RULE_GROUP = "pixelstream"
RECEIVER_SECRET = "alertmanager-receiver"
RECEIVER_SECRET_KEY = "url"
# Where the Prometheus operator mounts the Secrets listed in the Alertmanager's `secrets`.
RECEIVER_URL_FILE = f"/etc/alertmanager/secrets/{RECEIVER_SECRET}/{RECEIVER_SECRET_KEY}"
RECEIVER = "pixelstream"


@dataclass(frozen=True)
class AlertThresholds:
    """When each alert fires; the defaults are the stack config's (addons.monitoring.alerts)."""

    queued_players: int = 0
    """More players than this waiting for a stream ..."""
    queued_minutes: int = 10
    """... for this long: new GPU nodes and Unreal start-up take minutes, so a short queue is normal."""
    no_ready_stream_minutes: int = 5
    build_not_ready_minutes: int = 15
    """A build's streams short of what its scaler asked for this long (a bad image, a crash, no GPU): longer
    than an Unreal start and a GPU node's boot."""
    autoscaler_at_max_minutes: int = 15
    scale_in_held_minutes: int = 30
    """A build keeping streams it does not want this long: longer than a rollout of a build's streams should take."""
    turn_not_ready_minutes: int = 5
    session_service_down_minutes: int = 2
    gpu_temperature_celsius: int = 85
    gpu_temperature_minutes: int = 5


# What an operator does when each alert fires: sent with the alert (annotation `runbook`) and listed in
# docs/alerts.md (python -m pixelstream.tools.runbook).
RUNBOOK: dict[str, str] = {
    "PixelStreamPlayersQueued": (
        "Look at the builds' streams (kubectl -n {{ $labels.namespace }} get deployments -l "
        "app.kubernetes.io/name=stream, and the dashboard's wanted streams): a build at its maxReplicas needs "
        "a higher maxReplicas (and GPU pool maxSize, and the TURN capacity the plan checks); stream pods Pending "
        "mean no GPU node: the GPU pool at its maxSize, or OCI out of capacity (the node pool's work requests); "
        "streams not ready: see PixelStreamBuildNotReady."
    ),
    "PixelStreamNoReadyStream": (
        "kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=stream: Pending means no GPU "
        "advertised (the GPU nodes, the device plugin: nvidia.com/gpu in the nodes' allocatable); not ready or "
        "restarting means the Unreal app does not reach its signalling server (the logs of the streamer and "
        "signalling containers; the build's unrealVersion against its image)."
    ),
    "PixelStreamBuildNotReady": (
        "Set the build's weight to 0 first (its players go to the other builds), then kubectl -n "
        "{{ $labels.namespace }} describe deployment {{ $labels.deployment }}: image pull errors (the reference, "
        "the pull secret), startup probe failures (the app never connects: its engine version against the "
        "build's unrealVersion), or Pending pods (no GPU free: the pool's maxSize)."
    ),
    "PixelStreamAutoscalerAtMaximum": (
        "Raise the build's maxReplicas (streaming.autoscaling.maxReplicas or streaming.builds[].maxReplicas) with "
        "the GPU pool's maxSize and the TURN capacity the plan checks, or accept that players queue at peaks."
    ),
    "PixelStreamScaleInHeld": (
        "kubectl -n {{ $labels.namespace }} rollout status deployment/stream-{{ $labels.build }}: a rollout (the "
        "build's image changed) whose new pod stays Pending for want of a GPU stalls while the GPU pool is at its "
        "maxSize: raise maxSize, or let it finish as sessions end, and ship the next image as a new build "
        "(streaming.builds) instead. No rollout: the session service's log (deletion costs not written, scale "
        "writes refused) and its pixelstream_session_scale_errors_total."
    ),
    "PixelStreamTurnPodsNotReady": (
        "kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=turn -o wide: a terminating coturn "
        "drains its sessions (an update, up to streaming.turn.drainSeconds): expected; otherwise read the "
        "bootstrap's log (the node's addresses) and coturn's, and the TURN node's Ready condition."
    ),
    "PixelStreamSessionServiceDown": (
        "kubectl -n {{ $labels.namespace }} describe deployment session and its logs: it is not ready until it has "
        "read the ConfigMap session-builds and while its stream list is stale (its Role, the API server). It runs "
        "as one pod: a restart ends every session, so fix the cause before restarting it."
    ),
    "PixelStreamGpuXidError": (
        "Look the XID up in NVIDIA's XID table. For a fatal one, cordon the node (kubectl cordon "
        "{{ $labels.Hostname }}), let its sessions end or drain it, then replace it: delete the node, the pool "
        "launches another."
    ),
    "PixelStreamGpuTemperatureHigh": (
        "Lower the load on that GPU (fewer streams per GPU, a lower streaming.streamer.maxFps); if it keeps "
        "rising, cordon the node and let its sessions end; a node that runs hot at a normal load is a case for OCI "
        "support."
    ),
}


def _alert(name: str, expr: str, minutes: int, severity: str, summary: str, description: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if minutes:
        rule["for"] = f"{minutes}m"
    rule["labels"] = {"severity": severity, "platform": "pixelstream"}
    rule["annotations"] = {"summary": summary, "description": description, "runbook": RUNBOOK[name]}
    return rule


def alert_rules(namespace: str | None, limits: AlertThresholds) -> list[dict[str, Any]]:
    """The rule groups of the platform's PrometheusRule: the streaming workload's in `namespace` (none when
    None) and the GPUs'."""
    workload = _workload_alerts(namespace, limits) if namespace else []
    return [{"name": RULE_GROUP, "rules": [*workload, *_gpu_alerts(limits)]}]


def _workload_alerts(namespace: str, limits: AlertThresholds) -> list[dict[str, Any]]:
    ns = f'namespace="{namespace}"'
    return [
        _alert(
            "PixelStreamPlayersQueued",
            f"sum by (namespace) (pixelstream_session_queue{{{ns}}}) > {limits.queued_players}",
            limits.queued_minutes,
            "warning",
            "Players are waiting for a stream",
            "{{ $value }} players queued in {{ $labels.namespace }} for "
            f"{limits.queued_minutes} minutes: the streams or the GPU pool cannot keep up.",
        ),
        _alert(
            "PixelStreamNoReadyStream",
            "sum by (namespace) (kube_deployment_status_replicas_available"
            f'{{{ns},deployment=~"{STREAM_BUILD_DEPLOYMENTS}"}}) < 1',
            limits.no_ready_stream_minutes,
            "critical",
            "No stream is ready",
            "No build's stream Deployment in {{ $labels.namespace }} has had an available pod for "
            f"{limits.no_ready_stream_minutes} minutes: no player can be served.",
        ),
        _alert(
            "PixelStreamBuildNotReady",
            "max by (namespace, deployment) (kube_deployment_status_replicas_unavailable"
            f'{{{ns},deployment=~"{STREAM_BUILD_DEPLOYMENTS}"}}) > 0',
            limits.build_not_ready_minutes,
            "warning",
            "A build's streams do not become ready",
            "{{ $value }} streams of {{ $labels.deployment }} in {{ $labels.namespace }} have not become ready for "
            f"{limits.build_not_ready_minutes} minutes: a new build's image or start fails, or there is no GPU for "
            "it. Its players wait; set its weight to 0 (or back to the previous build) while you look.",
        ),
        _alert(
            "PixelStreamAutoscalerAtMaximum",
            f"max by (namespace, {BUILD_METRIC_LABEL}) (pixelstream_session_streams_wanted{{{ns}}})"
            f" >= on (namespace, {BUILD_METRIC_LABEL}) "
            f"max by (namespace, {BUILD_METRIC_LABEL}) (pixelstream_session_streams_max{{{ns}}})",
            limits.autoscaler_at_max_minutes,
            "warning",
            "A build's streams are at their maximum",
            f"The session service has wanted {{{{ $value }}}} streams of build {{{{ $labels.{BUILD_METRIC_LABEL} }}}}, "
            f"its maximum, for {limits.autoscaler_at_max_minutes} minutes: raise the build's maxReplicas "
            "(streaming.autoscaling.maxReplicas) or the GPU pool's maxSize.",
        ),
        _alert(
            "PixelStreamScaleInHeld",
            f"max by (namespace, {BUILD_METRIC_LABEL}) (pixelstream_session_scale_in_held{{{ns}}}) > 0",
            limits.scale_in_held_minutes,
            "warning",
            "A build keeps streams it does not want",
            f"Build {{{{ $labels.{BUILD_METRIC_LABEL} }}}} in {{{{ $labels.namespace }}}} has had more streams than "
            f"it wants for {limits.scale_in_held_minutes} minutes: its GPUs are held by streams nobody asked for.",
        ),
        _alert(
            "PixelStreamTurnPodsNotReady",
            f'kube_daemonset_status_number_ready{{{ns},daemonset="{TURN_DAEMONSET}"}}'
            " < on (namespace, daemonset) "
            f'kube_daemonset_status_desired_number_scheduled{{{ns},daemonset="{TURN_DAEMONSET}"}}',
            limits.turn_not_ready_minutes,
            "critical",
            "TURN pods are not ready",
            f"Only {{{{ $value }}}} TURN pods are ready in {{{{ $labels.namespace }}}} for "
            f"{limits.turn_not_ready_minutes} minutes: players behind strict NATs lose their relay.",
        ),
        _alert(
            "PixelStreamSessionServiceDown",
            "sum by (namespace) (kube_deployment_status_replicas_available"
            f'{{{ns},deployment="{SESSION_SERVICE}"}}) < 1',
            limits.session_service_down_minutes,
            "critical",
            "The session service is down",
            f"{SESSION_SERVICE} in {{{{ $labels.namespace }}}} has had no available pod for "
            f"{limits.session_service_down_minutes} minutes: no player can join, and no stream is handed out.",
        ),
    ]


def _gpu_alerts(limits: AlertThresholds) -> list[dict[str, Any]]:
    return [
        _alert(
            "PixelStreamGpuXidError",
            "max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS) > 0",
            0,
            "critical",
            "A GPU reported an XID error",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }}: check the driver "
            "log; the node may need a drain and reboot.",
        ),
        _alert(
            "PixelStreamGpuTemperatureHigh",
            f"max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP) > {limits.gpu_temperature_celsius}",
            limits.gpu_temperature_minutes,
            "warning",
            "A GPU runs hot",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has been at {{ $value }} °C for "
            f"{limits.gpu_temperature_minutes} minutes (threshold {limits.gpu_temperature_celsius} °C).",
        ),
    ]


ReceiverKind = Literal["webhook", "slack"]


@dataclass(frozen=True)
class AlertReceiver:
    """Where Alertmanager sends every alert but the Watchdog. The URL is a secret: it reaches Alertmanager
    only as a file from a Kubernetes Secret, never through Helm values."""

    kind: ReceiverKind
    url: pulumi.Input[str]
    channel: str | None = None
    """Slack channel, when the webhook's own default is not wanted."""


def alertmanager_config(receiver: AlertReceiver) -> dict[str, Any]:
    """The parts of kube-prometheus-stack's `alertmanager.config` that route alerts to `receiver`; Helm merges
    them over the chart's (global settings, inhibit rules and templates stay the chart's). Lists replace the
    chart's, so the Watchdog's route to `null` and that receiver are repeated."""
    if receiver.kind == "slack":
        settings: dict[str, Any] = {"api_url_file": RECEIVER_URL_FILE, "send_resolved": True}
        if receiver.channel:
            settings["channel"] = receiver.channel
        target = {"name": RECEIVER, "slack_configs": [settings]}
    else:
        target = {"name": RECEIVER, "webhook_configs": [{"url_file": RECEIVER_URL_FILE, "send_resolved": True}]}
    return {
        "route": {
            "receiver": RECEIVER,
            "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}],
        },
        "receivers": [{"name": "null"}, target],
    }
