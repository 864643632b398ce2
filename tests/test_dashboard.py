"""The dashboard's queries against the labels their exporters really write: every metric is one we scrape,
every label a query groups by, matches on or shows in a legend exists on it, and the per-GPU panels tell
nodes apart when run by promtool on series shaped as dcgm-exporter writes them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from promtool import expr_tests

from pixelstream.addons import dashboard
from pixelstream.addons.monitoring import SCRAPE_CONFIGS


def job_labels(job: str) -> set[str]:
    """The labels our annotation-driven scrape job gives every series."""
    [config] = [c for c in SCRAPE_CONFIGS if c["job_name"] == job]
    targets = {r["target_label"] for r in config["relabel_configs"] if "target_label" in r}
    return {label for label in targets if not label.startswith("__")} | {"job", "instance"}


# What the Prometheus operator puts on series scraped through a ServiceMonitor.
SERVICE_MONITOR = {"job", "instance", "namespace", "service", "pod", "container", "endpoint"}
PODS = job_labels("kubernetes-pods") | {"app_kubernetes_io_name", "app_kubernetes_io_part_of"}
SERVICES = job_labels("kubernetes-service-endpoints") | {"app_kubernetes_io_name", "app_kubernetes_io_part_of"}
# Labels by metric-name prefix, from the exporters' sources:
# dcgm-exporter 4.8.2 internal/pkg/rendermetrics/render_metrics.go (GPU metrics: `Hostname`, not `hostname`);
# coturn 4.7.0 src/apps/relay/prom_server.c (turn_total_allocations{type}; the turn_total_traffic_* counters
# have no labels); kube-state-metrics v2 (kube_daemonset_*{namespace, daemonset}, kube_deployment_*{namespace,
# deployment}, kube_pod_container_status_restarts_total{namespace, pod, uid, container}).
EXPORTED = {
    "DCGM_FI_": {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"} | SERVICE_MONITOR,
    "turn_total_allocations": {"type"} | PODS,
    "turn_total_traffic_": PODS,
    # The session service's (session/metrics.py), scraped through its Service; the counters' own labels.
    "pixelstream_session_refused_total": {"reason"} | SERVICES,
    "pixelstream_session_dropped_total": {"type"} | SERVICES,
    "pixelstream_session_joined_total": {"kind"} | SERVICES,
    # The gauges, once per build.
    "pixelstream_session_": {"build"} | SERVICES,
    "kube_daemonset_status_": {"namespace", "daemonset"} | SERVICE_MONITOR,
    "kube_deployment_status_": {"namespace", "deployment"} | SERVICE_MONITOR,
    "kube_pod_container_status_restarts_total": {"namespace", "pod", "uid", "container"} | SERVICE_MONITOR,
    "up": PODS | SERVICES | SERVICE_MONITOR,
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def label_problems(expr: str, legend: str) -> list[str]:
    """Why `expr` (with its `legend`) would group, match or show labels its metrics do not have."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    grouped = {g.strip() for clause in re.findall(r"\bby\s*\(([^)]*)\)", bare) for g in clause.split(",") if g.strip()}
    matched = set(re.findall(r"(\w+)\s*[=!]~?\s*\"", expr))
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    names = {m[1] for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", bare) if not m[2]} - KEYWORDS
    shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    # label_replace(v, "dst", "$1", "src", "regex") makes `dst`.
    made = set(re.findall(r'\)\s*,\s*"(\w+)"\s*,\s*"\$\d+"', expr))
    problems = []
    for name in sorted(names):
        known = next((labels for prefix, labels in EXPORTED.items() if name.startswith(prefix)), None)
        if known is None:
            problems.append(f"{name}: not a metric this platform scrapes")
            continue
        problems += [f"{name} has no label {label}" for label in sorted((grouped | matched | shown) - known - made)]
    if re.search(r"\b(sum|avg|max|min|count)\b", bare):
        problems += [f"legend shows {label}, which the aggregation drops" for label in sorted(shown - grouped)]
    return problems


def dashboard_problems(panels: Iterable) -> list[str]:
    return [
        f"{title}: {expr}: {problem}"
        for title, _, _, targets in panels
        for expr, legend in targets
        for problem in label_problems(expr, legend)
    ]


def test_every_dashboard_query_uses_labels_its_metrics_have() -> None:
    assert not dashboard_problems(dashboard.PANELS)


@pytest.mark.parametrize(
    ("broken", "found"),
    [
        ("Hostname", "DCGM_FI_DEV_GPU_UTIL has no label hostname"),
        ("turn_total_allocations", "turn_total_allocs: not a metric this platform scrapes"),
    ],
)
def test_a_wrong_label_or_metric_fails(broken: str, found: str) -> None:
    wrong = {"Hostname": ("Hostname", "hostname"), "turn_total_allocations": ("allocations", "allocs")}[broken]
    panels = [
        (t, k, u, tuple((e.replace(*wrong), lg.replace(*wrong)) for e, lg in targets))
        for t, k, u, targets in dashboard.PANELS
    ]
    assert found in "\n".join(dashboard_problems(panels))


def test_turn_panels_cover_allocations_traffic_and_node_health() -> None:
    expressions = " ".join(dashboard.queries())
    for metric in ("turn_total_allocations", "turn_total_traffic_sentb", "turn_total_traffic_peer_rcvb"):
        assert metric in expressions
    assert 'up{job="kubernetes-pods",container="coturn"}' in expressions
    assert 'kube_daemonset_status_number_ready{daemonset="turn"}' in expressions


GPU_NODE = (
    'gpu="0",UUID="GPU-{node}",pci_bus_id="00000000:00:04.0",device="nvidia0",modelName="NVIDIA A10",Hostname="{node}"'
)
SCRAPE = 'job="dcgm-exporter",namespace="dcgm-exporter",service="dcgm-exporter",endpoint="metrics"'


def gpu_cases(panels: Iterable) -> tuple[dict[str, str], list[tuple[str, list[tuple[str, float]]]]]:
    """Two A10.1 nodes (each GPU index 0) and what every GPU panel must show: one line per node."""
    series, cases = {}, []
    for _, _, _, targets in panels:
        for expr, _ in targets:
            metric = re.search(r"\bDCGM_FI_\w+", expr)
            if not metric:
                continue
            for node, value in (("gpu-a", 40), ("gpu-b", 70)):
                labels = f'{GPU_NODE.format(node=node)},{SCRAPE},pod="dcgm-{node}",instance="{node}:9400"'
                series[f"{metric[0]}{{{labels}}}"] = f"{value}x5"
            cases.append((expr, [(f'{{Hostname="{n}", gpu="0"}}', v) for n, v in (("gpu-a", 40), ("gpu-b", 70))]))
    return series, cases


def test_gpu_panels_show_one_line_per_node_on_promtool(tmp_path: Path) -> None:
    series, cases = gpu_cases(dashboard.PANELS)
    assert len(cases) == 4
    result = expr_tests(tmp_path, series, cases)
    assert result.returncode == 0, result.stdout + result.stderr

    merged = [
        (t, k, u, tuple((e.replace("Hostname", "hostname"), lg) for e, lg in targets))
        for t, k, u, targets in dashboard.PANELS
    ]
    result = expr_tests(tmp_path, series, gpu_cases(merged)[1])
    assert result.returncode != 0 and "got:" in result.stdout + result.stderr, "nodes merged into one line"
