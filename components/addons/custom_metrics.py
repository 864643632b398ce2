"""CustomMetricsAdapter: prometheus-adapter serving the custom metrics the streamer autoscaler reads.

The rules are data (`ADAPTER_RULES`) so that tests can expand them exactly as prometheus-adapter does and
run the resulting queries on a real Prometheus engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from .charts import CHARTS, Chart, ReleaseArgs, namespace, release

# The metric each build's stream HPA scales on: players per ready stream of the build (the series' `build`
# label, which the HPA's metric selector names), read from the session service's Service.
POOL_RATIO_METRIC = "player_stream_pool_ratio"


@dataclass(frozen=True)
class AdapterRule:
    """Expose Prometheus series `series` as custom metric `metric` of Kubernetes `resource` objects."""

    series: str
    metric: str
    resource: Literal["pod", "service"]
    aggregation: Literal["avg", "sum"]

    def to_values(self) -> dict[str, Any]:
        """The rule in prometheus-adapter's configuration format."""
        return {
            "seriesQuery": f'{{__name__=~"^{self.series}$",namespace!="",{self.resource}!=""}}',
            "resources": {
                "overrides": {"namespace": {"resource": "namespace"}, self.resource: {"resource": self.resource}}
            },
            "name": {"matches": f"^{self.series}$", "as": self.metric},
            "metricsQuery": f"{self.aggregation}(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)",
        }


ADAPTER_RULES: tuple[AdapterRule, ...] = (
    # The session service, scraped through its Service so that series carry the `service` label.
    AdapterRule("pixelstream_session_queue", "pixelstream_player_queue_count", "service", "sum"),
    AdapterRule("pixelstream_session_streams_free", "pixelstream_available_count", "service", "sum"),
    AdapterRule("pixelstream_session_demand_ratio", POOL_RATIO_METRIC, "service", "avg"),
)

_SERIES = re.compile(r'__name__=~"\^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\$"')


def expand_metrics_query(
    rule: Mapping[str, Any],
    resource: str,
    namespace: str,
    names: Sequence[str],
    selector: Mapping[str, str] | None = None,
) -> str:
    """The PromQL prometheus-adapter runs for `rule` when asked for `resource` objects `names` in `namespace`,
    with an HPA's metric `selector` (matchLabels).

    As the adapter v0.12.0 does (pkg/naming/metrics_query.go, Build): `.Series` is the discovered series name,
    `.LabelMatchers` are the selector's labels (in key order, as a parsed label selector lists them), then the
    namespace and the objects through the labels that `resources.overrides` map to those resources; `.GroupBy`
    is the label of the requested resource.
    """
    match = _SERIES.search(rule["seriesQuery"])
    if not match:
        raise ValueError(f"seriesQuery {rule['seriesQuery']!r} names no single series")
    labels = {spec["resource"]: label for label, spec in rule["resources"]["overrides"].items()}
    if resource not in labels or "namespace" not in labels:
        raise ValueError(f"rule maps no label to the {resource!r} resource: {rule['resources']}")
    objects = f'="{names[0]}"' if len(names) == 1 else f'=~"{"|".join(names)}"'
    selected = [f'{key}="{value}"' for key, value in sorted((selector or {}).items())]
    matchers = ",".join([*selected, f'{labels["namespace"]}="{namespace}"', f"{labels[resource]}{objects}"])
    query = rule["metricsQuery"]
    for placeholder, value in (("Series", match["name"]), ("LabelMatchers", matchers), ("GroupBy", labels[resource])):
        query = query.replace(f"<<.{placeholder}>>", value)
    return query


@dataclass(kw_only=True)
class CustomMetricsAdapterArgs(ReleaseArgs):
    prometheus_url: pulumi.Input[str]
    """Base URL of the Prometheus that scrapes the session service (without the port)."""
    prometheus_port: int = 9090
    rules: Sequence[AdapterRule] = ADAPTER_RULES
    chart: Chart = CHARTS["prometheus-adapter"]


class CustomMetricsAdapter(pulumi.ComponentResource):
    """prometheus-adapter registered as the cluster's custom.metrics.k8s.io API, with only our rules."""

    def __init__(self, name: str, args: CustomMetricsAdapterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:CustomMetricsAdapter", name, None, opts)
        ns = namespace("custom-metrics", self)
        values = {
            "prometheus": {"url": args.prometheus_url, "port": args.prometheus_port},
            "rules": {"default": False, "custom": [rule.to_values() for rule in args.rules]},
            "nodeSelector": args.nodes.node_selector(),
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        }
        release(self, args, ns, values)
        self.register_outputs({})
