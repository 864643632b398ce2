"""The pixel-streaming Grafana dashboard of this project: demand, supply, GPUs and TURN traffic."""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# (title, kind, unit, [(PromQL, legend)]) in reading order: the HPA's inputs first, then the hardware.
PANELS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Players connected", "stat", "short", (("sum(matchmaker_player_socket_connections)", "players"),)),
    ("Players queued", "stat", "short", (("sum(matchmaker_player_queue_count)", "queued"),)),
    ("Ready streams", "stat", "short", (("sum(matchmaker_streamer_available_count)", "ready, idle"),)),
    ("Streams registered", "stat", "short", (("sum(matchmaker_streamer_connections)", "streams"),)),
    (
        "Pool ratio (players per ready stream, the autoscaler's metric)",
        "timeseries",
        "short",
        (("max(matchmaker_streamer_demand_ratio)", "ratio"),),
    ),
    (
        "Players and queue over time",
        "timeseries",
        "short",
        (
            ("sum(matchmaker_player_socket_connections)", "players"),
            ("sum(matchmaker_player_queue_count)", "queued"),
            ("sum(matchmaker_streamer_available_count)", "ready streams"),
        ),
    ),
    (
        "Players per stream pod",
        "timeseries",
        "short",
        (("max by (pod) (signalserver_player_socket_connections)", "{{pod}}"),),
    ),
    (
        "GPU utilisation",
        "timeseries",
        "percent",
        (("avg by (hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)", "{{hostname}} GPU {{gpu}}"),),
    ),
    (
        "Encoder (NVENC) utilisation",
        "timeseries",
        "percent",
        (("avg by (hostname, gpu) (DCGM_FI_DEV_ENC_UTIL)", "{{hostname}} GPU {{gpu}}"),),
    ),
    (
        "GPU memory used",
        "timeseries",
        "decmbytes",
        (("sum by (hostname, gpu) (DCGM_FI_DEV_FB_USED)", "{{hostname}} GPU {{gpu}}"),),
    ),
    (
        "TURN relayed traffic",
        "timeseries",
        "Bps",
        (
            ("sum by (instance) (rate(turn_total_traffic_sentb[2m]))", "sent {{instance}}"),
            ("sum by (instance) (rate(turn_total_traffic_rcvb[2m]))", "received {{instance}}"),
        ),
    ),
    ("TURN allocations", "timeseries", "short", (("sum by (instance) (turn_total_allocations)", "{{instance}}"),)),
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
