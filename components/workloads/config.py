"""What every workload's configuration has: a switch, a namespace of its own, and a check of its keys."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic.alias_generators import to_camel

from ..addons.charts import ADDON_NAMESPACES, ENGINE_NAMESPACES
from ..config_base import ConfigError, ConfigModel
from ..quantities import quantity

if TYPE_CHECKING:
    from ..config import StackConfig


# Namespaces a workload must not take: Kubernetes' own, the add-ons' and the workloads' engines'.
RESERVED_NAMESPACES = (
    *("default", "kube-system", "kube-public", "kube-node-lease"),
    *ADDON_NAMESPACES.values(),
    *ENGINE_NAMESPACES.values(),
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class WorkloadConfig(ConfigModel):
    """A workload's keys, one top-level key of the stack config; StackConfig checks every one it holds."""

    enabled: bool = True
    namespace: str

    def check(self, config: StackConfig) -> None:
        """Raise ConfigError for a bad value of this workload's keys (`config`: the whole stack's, for what the
        workload needs of the layers below)."""
        raise NotImplementedError

    def check_namespace(self, key: str) -> None:
        """The workload's namespace (config key `key`.namespace) is a DNS label no one else takes."""
        if not _DNS_LABEL.match(self.namespace):
            raise ConfigError(f"{key}.namespace", f"{self.namespace} is not a Kubernetes namespace name (a DNS label)")
        if self.namespace in RESERVED_NAMESPACES:
            raise ConfigError(
                f"{key}.namespace",
                f"{self.namespace} belongs to Kubernetes or an add-on of this platform; taken: "
                f"{', '.join(RESERVED_NAMESPACES)}",
            )


class ContainerResourcesConfig(ConfigModel):
    """A container's CPU and memory requests and limits (subclasses give their own defaults)."""

    cpu: str = "1"
    memory: str = "1Gi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"

    def resources(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


_QUANTITY_KINDS = {"cpu": "a CPU quantity such as 3750m or 4", "memory": "a memory quantity such as 8Gi"}


def check_requests_and_limits(path: str, model: ConfigModel) -> None:
    """A container's `cpu`, `memory` and their `...Limit` keys under `path`: quantities above zero, each
    request at most its limit (Kubernetes refuses a request above its limit)."""
    for kind, example in _QUANTITY_KINDS.items():
        values = {}
        for key in (kind, f"{kind}_limit"):
            text = getattr(model, key)
            try:
                values[key] = quantity(text)
            except ValueError:
                raise ConfigError(f"{path}.{to_camel(key)}", f"{text} is not {example}") from None
            if values[key] <= 0:
                raise ConfigError(f"{path}.{to_camel(key)}", f"{text} is not above zero")
        if values[kind] > values[f"{kind}_limit"]:
            raise ConfigError(
                f"{path}.{kind}",
                f"{getattr(model, kind)} is above the limit {kind}Limit ({getattr(model, f'{kind}_limit')}); "
                "Kubernetes refuses a request above its limit",
            )
