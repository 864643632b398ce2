"""The scrape jobs and dashboard queries, checked by a real Prometheus (promtool).

The scrape jobs come from the offline plan of the dev stack: exactly the values the Helm release would be
installed with.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from promtool import run

from pixelstream.addons.dashboard import queries
from pixelstream.tools.offline import plan_stack


@pytest.fixture(scope="module")
def dev_releases() -> dict[str, dict]:
    plan, _ = plan_stack("dev", ROOT)
    return {name.removesuffix(".yaml"): release for name, release in plan.helm_releases().items()}


KUBERNETES_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}


def prometheus_config(scrape_configs: list[dict]) -> str:
    """A prometheus.yml around our jobs. Debian's Prometheus is built without Kubernetes discovery, so each
    job's `kubernetes_sd_configs` is swapped for a static target; everything else is checked as written."""
    jobs = copy.deepcopy(scrape_configs)
    for job in jobs:
        for sd in job.pop("kubernetes_sd_configs"):
            assert sd["role"] in KUBERNETES_SD_ROLES, sd
        job["static_configs"] = [{"targets": ["127.0.0.1:9000"]}]
    return yaml.safe_dump({"global": {"scrape_interval": "30s"}, "scrape_configs": jobs})


def test_scrape_jobs_pass_promtool_check_config(dev_releases: dict[str, dict], tmp_path: Path) -> None:
    jobs = dev_releases["kube-prometheus-stack"]["values"]["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
    assert [j["job_name"] for j in jobs] == ["kubernetes-service-endpoints", "kubernetes-pods"]
    targets = {j["job_name"]: {r.get("target_label") for r in j["relabel_configs"]} for j in jobs}
    assert {"namespace", "service"} <= targets["kubernetes-service-endpoints"]
    assert {"namespace", "pod"} <= targets["kubernetes-pods"]
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config(jobs))
    result = run("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr

    jobs[0]["relabel_configs"][0]["regex"] = "(true"
    path.write_text(prometheus_config(jobs))
    assert run("check", "config", str(path)).returncode != 0


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    def check(expressions: list[str]) -> int:
        rules = [{"record": f"pixelstream:dashboard:{i}", "expr": e} for i, e in enumerate(expressions)]
        path = tmp_path / "dashboard-rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        return run("check", "rules", str(path)).returncode

    assert len(queries()) >= 10
    assert check(queries()) == 0
    assert check([*queries(), "sum(rate(turn_total_traffic_sentb[2m])"]) != 0


def test_every_pod_annotated_for_scraping_declares_its_metrics_port() -> None:
    """The pod job keeps only the target of the annotated port among the declared container ports."""
    plan, _ = plan_stack("dev", ROOT)
    annotated = {}
    for name, manifest in plan.manifests().items():
        template = manifest.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            declared = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            annotated[name] = int(annotations["prometheus.io/port"]) in declared
    assert annotated == {"pixel.daemonset.turn.yaml": True}
