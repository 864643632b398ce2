"""The pixel-streaming Grafana dashboard of this project: demand, supply, each build's players and start failures,
GPUs and TURN traffic."""

from __future__ import annotations

from typing import Any

from ..constants import (
    BUILD_METRIC_LABEL,
    COTURN_CONTAINER,
    STREAM_BUILD_DEPLOYMENTS,
    STREAM_DEPLOYMENT,
    STREAM_PREPULL,
    TURN_DAEMONSET,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# dcgm-exporter labels GPU metrics `Hostname` (capital H; internal/pkg/rendermetrics/render_metrics.go) and
# `gpu`, the index on the node: both are needed to tell GPUs of different nodes apart.
GPU = "Hostname, gpu"
GPU_LEGEND = "{{Hostname}} GPU {{gpu}}"
BUILD = BUILD_METRIC_LABEL
# A stream pod is named stream-<build>-<ReplicaSet hash>-<suffix>: its build, for series that carry only the pod.
_POD_BUILD = f'"{BUILD}", "$1", "pod", "{STREAM_DEPLOYMENT}-(.+)-[a-z0-9]+-[a-z0-9]+"'

# (title, kind, unit, [(PromQL, legend)]) in reading order: the scaler's inputs first, then the hardware.
PANELS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Players playing", "stat", "short", (("sum(pixelstream_session_players)", "players"),)),
    ("Players queued", "stat", "short", (("sum(pixelstream_session_queue)", "queued"),)),
    ("Free streams", "stat", "short", (("sum(pixelstream_session_streams_free)", "ready, free"),)),
    ("Ready streams", "stat", "short", (("sum(pixelstream_session_streams_ready)", "streams"),)),
    (
        "Streams by build (wanted: in use, waiting players and the buffer)",
        "timeseries",
        "short",
        (
            (f"max by ({BUILD}) (pixelstream_session_streams_wanted)", f"wanted: {{{{{BUILD}}}}}"),
            (f"max by ({BUILD}) (pixelstream_session_streams_ready)", f"ready: {{{{{BUILD}}}}}"),
            (f"max by ({BUILD}) (pixelstream_session_streams_in_use)", f"in use: {{{{{BUILD}}}}}"),
        ),
    ),
    (
        "Players and queue by build",
        "timeseries",
        "short",
        (
            (f"sum by ({BUILD}) (pixelstream_session_players)", f"playing: {{{{{BUILD}}}}}"),
            (f"sum by ({BUILD}) (pixelstream_session_queue)", f"queued: {{{{{BUILD}}}}}"),
        ),
    ),
    (
        "Stream start failures by build",
        "timeseries",
        "short",
        (
            (
                "sum by (deployment) (kube_deployment_status_replicas_unavailable"
                f'{{deployment=~"{STREAM_BUILD_DEPLOYMENTS}"}})',
                "not ready: {{deployment}}",
            ),
            (
                f"sum by ({BUILD}) (label_replace(increase(kube_pod_container_status_restarts_total"
                f'{{pod=~"{STREAM_BUILD_DEPLOYMENTS}",pod!~"{STREAM_PREPULL}-.+"}}[15m]), {_POD_BUILD}))',
                f"restarts (15 min): {{{{{BUILD}}}}}",
            ),
        ),
    ),
    (
        "Players and queue over time",
        "timeseries",
        "short",
        (
            ("sum(pixelstream_session_players)", "players"),
            ("sum(pixelstream_session_queue)", "queued"),
            ("sum(pixelstream_session_streams_free)", "free streams"),
        ),
    ),
    (
        "Refused joins and dropped player messages (5 min)",
        "timeseries",
        "short",
        (
            ("sum by (reason) (increase(pixelstream_session_refused_total[5m]))", "refused: {{reason}}"),
            ("sum by (type) (increase(pixelstream_session_dropped_total[5m]))", "dropped: {{type}}"),
        ),
    ),
    (
        "GPU utilisation",
        "timeseries",
        "percent",
        ((f"avg by ({GPU}) (DCGM_FI_DEV_GPU_UTIL)", GPU_LEGEND),),
    ),
    (
        "Encoder (NVENC) utilisation",
        "timeseries",
        "percent",
        ((f"avg by ({GPU}) (DCGM_FI_DEV_ENC_UTIL)", GPU_LEGEND),),
    ),
    (
        "GPU memory used",
        "timeseries",
        "decmbytes",
        ((f"sum by ({GPU}) (DCGM_FI_DEV_FB_USED)", GPU_LEGEND),),
    ),
    ("GPU temperature", "timeseries", "celsius", ((f"max by ({GPU}) (DCGM_FI_DEV_GPU_TEMP)", GPU_LEGEND),)),
    (
        "TURN nodes ready",
        "stat",
        "short",
        (
            (f'sum(kube_daemonset_status_number_ready{{daemonset="{TURN_DAEMONSET}"}})', "ready"),
            (f'sum(kube_daemonset_status_desired_number_scheduled{{daemonset="{TURN_DAEMONSET}"}})', "desired"),
        ),
    ),
    (
        "TURN exporter up, per node",
        "timeseries",
        "short",
        ((f'max by (node) (up{{job="kubernetes-pods",container="{COTURN_CONTAINER}"}})', "{{node}}"),),
    ),
    (
        "TURN allocations, per node",
        "timeseries",
        "short",
        (("sum by (node) (turn_total_allocations)", "{{node}}"),),
    ),
    (
        # coturn adds a session's bytes to these counters when the session ends.
        "TURN relayed traffic (sessions ended)",
        "timeseries",
        "Bps",
        (
            ("sum(rate(turn_total_traffic_sentb[5m]))", "to players"),
            ("sum(rate(turn_total_traffic_rcvb[5m]))", "from players"),
            ("sum(rate(turn_total_traffic_peer_sentb[5m]))", "to streams"),
            ("sum(rate(turn_total_traffic_peer_rcvb[5m]))", "from streams"),
        ),
    ),
)


def queries() -> list[str]:
    return [expr for *_, targets in PANELS for expr, _ in targets]


def dashboard() -> dict[str, Any]:
    panels = []
    x = y = row_height = 0
    for index, (title, kind, unit, targets) in enumerate(PANELS, start=1):
        width, height = (6, 4) if kind == "stat" else (12, 8)
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        row_height = max(row_height, height)
        panels.append(
            {
                "id": index,
                "type": kind,
                "title": title,
                "datasource": DATASOURCE,
                "gridPos": {"x": x, "y": y, "w": width, "h": height},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        x += width
    return {
        "uid": "pixelstream-overview",
        "title": "Pixel Streaming",
        "tags": ["pixelstream"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "templating": {
            "list": [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"}]
        },
        "panels": panels,
    }
