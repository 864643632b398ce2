"""What every workload's configuration has: a switch, a namespace of its own, and a check of its keys; and the
checks workloads share (namespaces, Secret and host names, requests within limits)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic.alias_generators import to_camel

from ..addons.charts import ADDON_NAMESPACES
from ..config_base import ConfigError, ConfigModel
from ..quantities import quantity

if TYPE_CHECKING:
    from ..config import StackConfig

# Namespaces a workload must not take: Kubernetes' own, and the add-ons'.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", *ADDON_NAMESPACES.values())
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_QUANTITY_KINDS = {"cpu": "a CPU quantity such as 3750m or 4", "memory": "a memory quantity such as 8Gi"}


class WorkloadConfig(ConfigModel):
    """A workload's keys, one top-level key of the stack config; StackConfig checks every one it holds."""

    enabled: bool = True
    namespace: str

    def check(self, config: StackConfig) -> None:
        """Raise ConfigError for a bad value of this workload's keys (`config`: the whole stack's, for what the
        workload needs of the layers below)."""
        raise NotImplementedError


def check_namespace(key: str, namespace: str) -> None:
    """`<key>.namespace`: a namespace name no one else on the platform takes."""
    if not DNS_LABEL.match(namespace):
        raise ConfigError(f"{key}.namespace", f"{namespace} is not a Kubernetes namespace name (a DNS label)")
    if namespace in RESERVED_NAMESPACES:
        raise ConfigError(
            f"{key}.namespace",
            f"{namespace} belongs to Kubernetes or an add-on of this platform; taken: {', '.join(RESERVED_NAMESPACES)}",
        )


def check_pull_secrets(key: str, names: Sequence[str]) -> None:
    """`<key>.imagePullSecrets`: Secret names."""
    for index, secret in enumerate(names):
        if not DNS_SUBDOMAIN.match(secret):
            raise ConfigError(f"{key}.imagePullSecrets[{index}]", f"{secret} is not a Secret name")


def check_host(path: str, host: str | None) -> None:
    if host is not None and not HOST.match(host):
        raise ConfigError(path, f"{host} is not a DNS host name")


def check_requests_and_limits(prefix: str, settings: ConfigModel) -> None:
    """`cpu`, `memory`, `cpuLimit` and `memoryLimit` under `prefix`: quantities above zero, requests within limits."""
    for kind, example in _QUANTITY_KINDS.items():
        values = {}
        for key in (kind, f"{kind}_limit"):
            text = getattr(settings, key)
            try:
                values[key] = quantity(text)
            except ValueError:
                raise ConfigError(f"{prefix}.{to_camel(key)}", f"{text} is not {example}") from None
            if values[key] <= 0:
                raise ConfigError(f"{prefix}.{to_camel(key)}", f"{text} is not above zero")
        if values[kind] > values[f"{kind}_limit"]:
            raise ConfigError(
                f"{prefix}.{kind}",
                f"{getattr(settings, kind)} is above the limit {kind}Limit ({getattr(settings, f'{kind}_limit')}); "
                "Kubernetes refuses a request above its limit",
            )
