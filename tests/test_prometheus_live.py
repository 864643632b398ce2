"""The generated scrape jobs on a running Prometheus: annotated Services and pods on loopback are scraped and
relabelled, and the alert on the session service's own series finds the build it is about.

Debian's Prometheus has no Kubernetes discovery, so the targets are handed over through file discovery with
the same `__meta_kubernetes_*` labels Kubernetes discovery would attach; the relabelling is ours, unchanged.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from conftest import ROOT, free_port
from tools import require

from pixelstream.tools.offline import plan_stack
from pixelstream.workloads.pixel_streaming.session.metrics import Metrics

pytestmark = pytest.mark.slow
CANARY_IMAGE = "registry.example/game:canary-1.0.1@sha256:" + "c" * 64

# What the session service itself renders (session/metrics.py) for two builds: main with 3 players on 4 ready
# streams, 1 free, and all 5 streams it may have wanted; a canary with 1 player on its one stream, 1 waiting.
SESSION = Metrics().render(
    {
        "main": {"queued": 0, "playing": 3, "streams": 4, "inUse": 3, "free": 1, "retiring": 0, "wanted": 5, "max": 5},
        "canary": {
            "queued": 1,
            "playing": 1,
            "streams": 1,
            "inUse": 1,
            "free": 0,
            "retiring": 0,
            "wanted": 2,
            "max": 3,
        },
    }
)
# What coturn's exporter writes on two TURN nodes (coturn src/apps/relay/prom_server.c).
TURN_A, TURN_B = 'turn_total_allocations{type="UDP"} 3\n', 'turn_total_allocations{type="UDP"} 0\n'


def serve(body: str | Callable[[], str]) -> ThreadingHTTPServer:
    """Serves `body` (or what it returns at each request) as an exporter's text format, on loopback."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = (body() if callable(body) else body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def service_target(name: str, port: int, annotated: bool) -> dict:
    labels = {
        "__meta_kubernetes_namespace": "pixel",
        "__meta_kubernetes_service_name": name,
        "__meta_kubernetes_service_label_app": name,
        "__meta_kubernetes_pod_node_name": "node-a",
        "__meta_kubernetes_service_annotation_prometheus_io_port": str(port),
    }
    if annotated:
        labels["__meta_kubernetes_service_annotation_prometheus_io_scrape"] = "true"
    # The endpoint's own port is not the metrics port: the port annotation must redirect the scrape.
    return {"targets": ["127.0.0.1:3000"], "labels": labels}


def pod_target(name: str, port: int, phase: str, container: str = "coturn", declared: int | None = None) -> dict:
    """A pod discovery target: one per declared container port (`declared`, the metrics port by default)."""
    labels = {
        "__meta_kubernetes_namespace": "pixel",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_node_name": f"node-of-{name}",
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_init": "false",
        "__meta_kubernetes_pod_container_port_number": str(port if declared is None else declared),
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
    }
    return {"targets": ["127.0.0.1:3000"], "labels": labels}


def init_container(target: dict) -> dict:
    """The same pod's init container, which declares no port."""
    labels = {**target["labels"], "__meta_kubernetes_pod_container_name": "bootstrap"}
    labels["__meta_kubernetes_pod_container_init"] = "true"
    labels["__meta_kubernetes_pod_container_port_number"] = ""
    return {"targets": target["targets"], "labels": labels}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require("prometheus", "prometheus")
    directory = tmp_path_factory.mktemp("prometheus")
    servers = [serve(SESSION), serve(TURN_A), serve(TURN_B)]
    ignored = serve("pixelstream_session_streams_wanted 9\n")
    ports = [s.server_address[1] for s in (*servers, ignored)]
    targets = {
        "kubernetes-service-endpoints": [
            service_target("session", ports[0], annotated=True),
            service_target("not-annotated", ports[3], annotated=False),
        ],
        "kubernetes-pods": [
            pod_target("turn-a", ports[1], "Running"),
            # The same pods' other containers and ports: rewritten to the metrics port, they must not be scraped.
            pod_target("turn-a", ports[1], "Running", declared=3478),
            pod_target("turn-a", ports[1], "Running", container="exporter", declared=9100),
            pod_target("turn-b", ports[2], "Running"),
            init_container(pod_target("turn-b", ports[2], "Running")),
            pod_target("turn-pending", ports[3], "Pending"),
        ],
    }
    plan, _ = plan_stack("dev", ROOT)
    values = plan.helm_releases()["kube-prometheus-stack.yaml"]["values"]
    jobs = copy.deepcopy(values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"])
    for job in jobs:
        sd_file = directory / f"{job['job_name']}.json"
        sd_file.write_text(json.dumps(targets[job["job_name"]]))
        job.pop("kubernetes_sd_configs")
        job["file_sd_configs"] = [{"files": [str(sd_file)]}]
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    web = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={web}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://{web}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if len(query(url, "up == 1")) >= 3:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prometheus scraped nothing within 30 s")
        time.sleep(1.5)  # one more scrape, so every series has a sample
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in (*servers, ignored):
            server.shutdown()


def query(url: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=5) as reply:
        return json.load(reply)["data"]["result"]


def samples(url: str, promql: str) -> dict[str, float]:
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in query(url, promql)}


def test_service_scrape_carries_namespace_and_service(prometheus: str) -> None:
    [series] = query(prometheus, 'pixelstream_session_streams_wanted{build="main"}')
    labels = series["metric"]
    assert labels["namespace"] == "pixel" and labels["service"] == "session"
    assert labels["node"] == "node-a" and labels["app"] == "session"
    assert labels["job"] == "kubernetes-service-endpoints"
    assert not labels["instance"].endswith(":3000"), "scraped on the annotated metrics port"


def test_only_annotated_running_targets_are_scraped(prometheus: str) -> None:
    up = {
        (r["metric"]["job"], r["metric"].get("service", r["metric"].get("pod"))) for r in query(prometheus, "up == 1")
    }
    assert up == {
        ("kubernetes-service-endpoints", "session"),
        ("kubernetes-pods", "turn-a"),
        ("kubernetes-pods", "turn-b"),
    }


def test_each_pod_is_scraped_once_on_its_metrics_port(prometheus: str) -> None:
    series = query(prometheus, "turn_total_allocations")
    assert sorted((s["metric"]["pod"], s["metric"]["container"], s["metric"]["node"]) for s in series) == [
        ("turn-a", "coturn", "node-of-turn-a"),
        ("turn-b", "coturn", "node-of-turn-b"),
    ]
    assert samples(prometheus, "sum(turn_total_allocations)") == {"{}": 3.0}


def test_the_at_maximum_alert_finds_the_build_at_its_maximum_on_the_scraped_series(prometheus: str) -> None:
    """The planned alert's expression on what the session service renders and the scrape job labels: main wants
    its maximum, the canary does not (its series alone would not do: the `on (namespace, build)` match must hold)."""
    plan, _ = plan_stack("dev", ROOT)
    values = plan.helm_releases()["kube-prometheus-stack.yaml"]["values"]
    groups = values["additionalPrometheusRulesMap"]["pixelstream"]["groups"]
    [rule] = [r for g in groups for r in g["rules"] if r["alert"] == "PixelStreamAutoscalerAtMaximum"]
    assert samples(prometheus, rule["expr"]) == {'{"build": "main", "namespace": "pixel"}': 5.0}
