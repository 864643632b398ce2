"""What every workload's configuration has: a switch, a namespace of its own, and a check of its keys."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic.alias_generators import to_camel

from ..addons.charts import ADDON_NAMESPACES, ENGINE_NAMESPACES
from ..config_base import ConfigError, ConfigModel, KeyPattern
from ..quantities import quantity
from .images import image_problem, version_problem

if TYPE_CHECKING:
    from ..config import StackConfig

# Namespaces a workload must not take: Kubernetes' own, the add-ons' and the workloads' engines'.
RESERVED_NAMESPACES = (
    *("default", "kube-system", "kube-public", "kube-node-lease"),
    *ADDON_NAMESPACES.values(),
    *ENGINE_NAMESPACES.values(),
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PATH_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


class IngressConfig(ConfigModel):
    """Where a workload is served through the platform's ingress controller."""

    host: str | None = None
    """The public DNS host; with addons.certManager on, served over TLS with a certificate from issuer."""
    path_prefix: str = ""
    """Serve under a path prefix such as /pixel (no trailing slash); empty: at the root."""
    issuer: Literal["letsencrypt-prod", "letsencrypt-staging"] = "letsencrypt-prod"
    """The ClusterIssuer of the host's certificate."""


class WorkloadConfig(ConfigModel):
    """A workload's keys, one top-level key of the stack config; StackConfig checks every one it holds."""

    enabled: bool = True
    """Deploy the workload."""
    namespace: str
    """Its namespace, which it creates and owns: a DNS label, not Kubernetes' own, an add-on's or an engine's
    (strimzi, keda), nor another enabled workload's."""
    CREDENTIALS: ClassVar[tuple[KeyPattern, ...]] = ()
    """Key paths (below the workload's own key) that hold credentials: each must be `secure:` in the stack file,
    and no message repeats its value."""

    def check(self, config: StackConfig) -> None:
        """Raise ConfigError for a bad value of this workload's keys (`config`: the whole stack's, for what the
        workload needs of the layers below)."""
        raise NotImplementedError


def check_namespace(config: StackConfig, key: str) -> None:
    """The namespace of the workload at top-level `key`: a DNS label, not Kubernetes' or an add-on's, and not
    another enabled workload's (each workload creates and owns its namespace)."""
    workloads = config.workload_keys()
    namespace = workloads[key].namespace
    if not _DNS_LABEL.match(namespace):
        raise ConfigError(f"{key}.namespace", f"{namespace} is not a Kubernetes namespace name (a DNS label)")
    if namespace in RESERVED_NAMESPACES:
        raise ConfigError(
            f"{key}.namespace",
            f"{namespace} belongs to Kubernetes or an add-on of this platform; taken: {', '.join(RESERVED_NAMESPACES)}",
        )
    # The workload listed first keeps a namespace two ask for; the later one is told.
    for other_key, other in workloads.items():
        if other_key == key:
            break
        if other.enabled and other.namespace == namespace:
            raise ConfigError(
                f"{key}.namespace", f"{namespace} is {other_key}.namespace too; each workload needs its own"
            )


def check_images(key: str, images: Mapping[str, str], names: Sequence[str]) -> None:
    """A workload's image overrides (`<key>.images`): only the images it runs (`names`), each pinned."""
    for name, reference in images.items():
        if name not in names:
            raise ConfigError(f"{key}.images.{name}", f"is not an image of the workload; known: {', '.join(names)}")
        problem = image_problem(reference) or version_problem(name, reference)
        if problem:
            raise ConfigError(f"{key}.images.{name}", problem)


def check_pull_secrets(key: str, names: Sequence[str]) -> None:
    for index, secret in enumerate(names):
        if not _DNS_SUBDOMAIN.match(secret):
            raise ConfigError(f"{key}.imagePullSecrets[{index}]", f"{secret} is not a Secret name")


def check_host(path: str, host: str | None) -> None:
    if host is not None and not _HOST.match(host):
        raise ConfigError(path, f"{host} is not a DNS host name")


def check_basic_auth_over_tls(
    config: StackConfig, route: str, host_key: str, host: str | None, opt_out_key: str, opted_out: bool
) -> None:
    """A route behind basic auth (`route`: what it serves) only over HTTPS, where the password is not sent in clear:
    a host with a certificate from cert-manager. A development stack may take plain HTTP with the opt-out
    `opt_out_key` (every plan then warns), and only where it means something."""
    tls = host is not None and config.addons.cert_manager.enabled
    if opted_out and config.environment != "development":
        raise ConfigError(
            opt_out_key,
            f"true is for development stacks only (environment: {config.environment}); serve {route} "
            "over HTTPS: a host with addons.certManager on",
        )
    if opted_out and tls:
        raise ConfigError(opt_out_key, f"true only applies without TLS; {host} gets a certificate here: remove it")
    if tls or opted_out:
        return
    problem = "is not set" if host is None else f"{host} gets no certificate with addons.certManager off"
    raise ConfigError(
        host_key,
        f"{problem}, so {route} would take the basic-auth password over plain HTTP; set a host with "
        f"addons.certManager on (TLS), or on a development stack accept plain HTTP with {opt_out_key}: true",
    )


_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$")


def check_https_url(path: str, url: str | None) -> None:
    if url is not None and not _HTTPS_URL.match(url):
        raise ConfigError(path, f"{url} is not an https:// URL")


def check_path_prefix(path: str, prefix: str, example: str) -> None:
    if prefix and not _PATH_PREFIX.match(prefix):
        raise ConfigError(path, f"{prefix} is not a path prefix such as {example} (no trailing slash)")


class Sized(Protocol):
    """A container's requests and limits as a workload's keys hold them."""

    cpu: str
    cpu_limit: str
    memory: str
    memory_limit: str


class ContainerResourcesConfig(ConfigModel):
    """A container's CPU and memory requests and limits (subclasses give their own defaults)."""

    cpu: str = "1"
    """The CPU request, a quantity such as 500m or 2, at most cpuLimit."""
    memory: str = "1Gi"
    """The memory request, a quantity such as 8Gi, at most memoryLimit."""
    cpu_limit: str = "1"
    """The CPU limit."""
    memory_limit: str = "1Gi"
    """The memory limit."""

    def resources(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


_QUANTITY_KINDS = {"cpu": "a CPU quantity such as 3750m or 4", "memory": "a memory quantity such as 8Gi"}


def check_requests_and_limits(path: str, sized: Sized) -> None:
    """Quantities above zero, each request at most its limit (`path`: where the keys are, e.g. streaming.streamer)."""
    for kind, example in _QUANTITY_KINDS.items():
        values = {}
        for key in (kind, f"{kind}_limit"):
            text = getattr(sized, key)
            try:
                values[key] = quantity(text)
            except ValueError:
                raise ConfigError(f"{path}.{to_camel(key)}", f"{text} is not {example}") from None
            if values[key] <= 0:
                raise ConfigError(f"{path}.{to_camel(key)}", f"{text} is not above zero")
        if values[kind] > values[f"{kind}_limit"]:
            raise ConfigError(
                f"{path}.{kind}",
                f"{getattr(sized, kind)} is above the limit {kind}Limit ({getattr(sized, f'{kind}_limit')}); "
                "Kubernetes refuses a request above its limit",
            )
