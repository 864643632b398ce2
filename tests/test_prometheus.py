"""The custom-metrics adapter rules, scrape jobs and dashboard queries, run on a real Prometheus (promtool).

The rules and scrape jobs come from the offline plan of the dev stack: exactly the values the Helm
releases would be installed with.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from promtool import expr_tests, run

from pixelstream.addons.custom_metrics import ADAPTER_RULES, POOL_RATIO_METRIC, expand_metrics_query
from pixelstream.addons.dashboard import queries
from pixelstream.tools.offline import plan_stack

SERVICE = 'job="kubernetes-service-endpoints",instance="10.244.1.5:9000",node="10.0.64.10"'
SESSION = 'namespace="pixel",service="session"'

# The session service with 4 ready streams, 3 held by players (1 free), 2 players queued: a ratio of 5/4.
# Look-alikes in another namespace and another Service must not leak in.
INPUT_SERIES = {
    f"pixelstream_session_players{{{SERVICE},{SESSION}}}": "3x5",
    f"pixelstream_session_queue{{{SERVICE},{SESSION}}}": "2x5",
    f"pixelstream_session_streams_ready{{{SERVICE},{SESSION}}}": "4x5",
    f"pixelstream_session_streams_free{{{SERVICE},{SESSION}}}": "1x5",
    f"pixelstream_session_demand_ratio{{{SERVICE},{SESSION}}}": "1.25x5",
    f'pixelstream_session_demand_ratio{{{SERVICE},namespace="staging",service="session"}}': "2x5",
    f'pixelstream_session_queue{{{SERVICE},namespace="staging",service="session"}}': "5x5",
    f'pixelstream_session_demand_ratio{{{SERVICE},namespace="pixel",service="session-canary"}}': "0.1x5",
    f'pixelstream_session_streams_free{{{SERVICE},namespace="pixel",service="session-canary"}}': "9x5",
}


@pytest.fixture(scope="module")
def dev_releases() -> dict[str, dict]:
    plan, _ = plan_stack("dev", ROOT)
    return {name.removesuffix(".yaml"): release for name, release in plan.helm_releases().items()}


@pytest.fixture(scope="module")
def rules(dev_releases: dict[str, dict]) -> dict[str, dict]:
    deployed = dev_releases["prometheus-adapter"]["values"]["rules"]
    assert deployed["default"] is False
    return {rule["name"]["as"]: rule for rule in deployed["custom"]}


def test_the_deployed_rules_are_the_reference_metrics(rules: dict[str, dict]) -> None:
    assert set(rules) == {"pixelstream_player_queue_count", "pixelstream_available_count", POOL_RATIO_METRIC}
    assert rules == {r.metric: r.to_values() for r in ADAPTER_RULES}


def test_expansion_follows_prometheus_adapter(rules: dict[str, dict]) -> None:
    assert expand_metrics_query(rules[POOL_RATIO_METRIC], "service", "pixel", ["session"]) == (
        'avg(pixelstream_session_demand_ratio{namespace="pixel",service="session"}) by (service)'
    )
    assert expand_metrics_query(rules["pixelstream_available_count"], "service", "pixel", ["a", "b"]) == (
        'sum(pixelstream_session_streams_free{namespace="pixel",service=~"a|b"}) by (service)'
    )


def hpa_reads(rules: dict[str, dict]) -> list[tuple[str, list[tuple[str, float]]]]:
    """What the autoscaler would read, and the values it must get."""
    service = ["session"]
    return [
        (
            expand_metrics_query(rules[POOL_RATIO_METRIC], "service", "pixel", service),
            [('{service="session"}', 1.25)],
        ),
        (
            expand_metrics_query(rules["pixelstream_available_count"], "service", "pixel", service),
            [('{service="session"}', 1)],
        ),
        (
            expand_metrics_query(rules["pixelstream_player_queue_count"], "service", "pixel", service),
            [('{service="session"}', 2)],
        ),
    ]


def test_adapter_rules_give_the_hpa_the_right_values(rules: dict[str, dict], tmp_path: Path) -> None:
    result = expr_tests(tmp_path, INPUT_SERIES, hpa_reads(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def broken(rules: dict[str, dict], metric: str, change) -> dict[str, dict]:
    damaged = copy.deepcopy(rules)
    change(damaged[metric])
    return damaged


@pytest.mark.parametrize(
    ("metric", "change"),
    [
        # the session service's `service` label mapped under another name
        (
            POOL_RATIO_METRIC,
            lambda r: r["resources"].update(
                overrides={"namespace": {"resource": "namespace"}, "svc": {"resource": "service"}}
            ),
        ),
        # the namespace label mapped to the wrong resource
        (
            POOL_RATIO_METRIC,
            lambda r: r["resources"].update(
                overrides={"service": {"resource": "namespace"}, "namespace": {"resource": "service"}}
            ),
        ),
        # grouped by pod instead of the Service the HPA describes
        (POOL_RATIO_METRIC, lambda r: r.update(metricsQuery="avg(<<.Series>>{<<.LabelMatchers>>}) by (pod)")),
        # summed over the namespace: the canary Service's free streams would count too
        (
            "pixelstream_available_count",
            lambda r: r.update(metricsQuery='sum(<<.Series>>{namespace="pixel"}) by (namespace)'),
        ),
        # the wrong source series: every ready stream, not the free ones
        (
            "pixelstream_available_count",
            lambda r: r.update(seriesQuery='{__name__=~"^pixelstream_session_streams_ready$"}'),
        ),
    ],
    ids=["service-label-renamed", "labels-swapped", "group-by-pod", "namespace-summed", "wrong-series"],
)
def test_a_broken_rule_fails_on_prometheus(rules: dict[str, dict], metric: str, change, tmp_path: Path) -> None:
    result = expr_tests(tmp_path, INPUT_SERIES, hpa_reads(broken(rules, metric, change)))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
    assert "got:" in result.stdout + result.stderr, "must fail on the values, not on a syntax error"


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
