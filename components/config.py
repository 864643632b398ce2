"""The stack's configuration: the layers' config models composed under one Pulumi config namespace, read and
validated before any resource exists.

All keys live in the project's namespace (`pixelstream`). Structured keys are read with `Config.get_object`;
each layer validates its own keys (`oci/config.py`, `addons/config.py`, `workloads/*/config.py`); a bad value
fails with one message that names the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pulumi
from pydantic import (
    PrivateAttr,
    ValidationError,
    field_validator,
)

from .addons.config import AddonsConfig, check_addons
from .config_base import NAMESPACE, ConfigError, ConfigModel, KeyPattern, check_ranges, depth, matches, translate, under
from .media_path import check_media_path
from .oci.config import OCI_CREDENTIALS, ClusterConfig, NetworkConfig, NodePoolsConfig, check_oci
from .oci.regions import OCI_REGIONS
from .secrets import KeyPath, leaves, secret_paths, secret_values
from .stack_file import MAX_DEPTH, OFFLINE_PLACEHOLDERS, read_stack_config
from .workloads.ai_workers.config import AiWorkersConfig
from .workloads.config import WorkloadConfig
from .workloads.gpu_jobs.config import JobsConfig
from .workloads.pixel_streaming.config import StreamingConfig
from .workloads.simulation.config import SimulationConfig

_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d{1,2}$")
_COMPARTMENT = re.compile(r"^ocid1\.(compartment|tenancy)\.oc\d+\.[a-z0-9-]*\.[a-z0-9]+$")


class StackConfig(ConfigModel):
    compartment_id: str
    """The OCID of the compartment that holds every resource (`pulumi config set compartmentId <OCID>`)."""
    _secrets: frozenset[str] = PrivateAttr(default=frozenset())
    environment: Literal["development", "staging", "production"] = "development"
    """What the stack is for (a plain string, like compartmentId); the policy pack refuses anonymous players in
    production (prod sets it), and plain-HTTP opt-outs are for development only."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    node_pools: NodePoolsConfig = NodePoolsConfig()
    """The default, TURN and GPU node pools (OKE only); the OCI provider's own keys (oci:region, ...) configure
    the provider."""
    addons: AddonsConfig = AddonsConfig()
    streaming: StreamingConfig = StreamingConfig()
    simulation: SimulationConfig = SimulationConfig()
    ai_workers: AiWorkersConfig = AiWorkersConfig()
    jobs: JobsConfig = JobsConfig()
    extra_regions: list[str] = []
    """OCI regions newer than this program's table (pixelstream.oci.regions) that `oci:region` may name."""

    @field_validator("compartment_id")
    @classmethod
    def _valid_compartment(cls, value: str) -> str:
        if not _COMPARTMENT.match(value):
            raise ValueError(f"{value} is not a compartment OCID (ocid1.compartment.oc1..<id>)")
        return value

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], secrets: Collection[str] = (), encrypted: Collection[KeyPath] | None = None
    ) -> StackConfig:
        """Validate raw config values (keys as in the stack file, without namespace) into a StackConfig. No
        message repeats a value under a credential key, nor the text of `secrets` (the stack's secret values).
        With `encrypted` (the paths the stack file encrypts), a credential outside them is refused first."""
        for key, value in raw.items():
            if depth(value) > MAX_DEPTH:
                raise ConfigError(key, f"is nested deeper than {MAX_DEPTH} levels")
        if encrypted is not None:
            check_credentials_encrypted(raw, encrypted)
        hidden = {*secrets, *secret_values(raw, credential_paths(raw))}
        try:
            return cls._parse(raw, hidden)
        except ConfigError as error:
            raise error.without(hidden) from None

    @classmethod
    def _parse(cls, raw: Mapping[str, Any], hidden: Collection[str]) -> StackConfig:
        try:
            config = cls.model_validate(dict(raw))
        except ValidationError as error:
            raise translate(error, cls, CREDENTIALS, hidden) from None
        # Each layer checks itself, the lower layers first: a workload may rely on a valid cluster.
        check_oci(config)
        check_addons(config)
        for key, workload in config.workload_keys().items():
            if workload.enabled:
                check_ranges(workload, key)
                workload.check(config)
        check_media_path(config)
        for index, region in enumerate(config.extra_regions):
            if not _REGION.match(region):
                raise ConfigError(
                    f"extraRegions[{index}]", f"{region} is not an OCI region identifier like us-ashburn-1"
                )
        return config

    @classmethod
    def from_stack_file(cls, path: Path, namespace: str = NAMESPACE) -> StackConfig:
        """A stack file's settings as the program would read them, with the offline plan's stand-ins for what
        the file leaves to each user or encrypts."""
        raw: dict[str, Any] = {}
        for full_key, value in read_stack_config(path, namespace).values.items():
            key_namespace, _, key = full_key.partition(":")
            if key_namespace == namespace:
                # As load_stack_config reads them: the string keys as they are, every other key structured config.
                raw[key] = value if key in STRING_KEYS else json.loads(value)
        for key, placeholder in OFFLINE_PLACEHOLDERS.items():
            raw.setdefault(key, placeholder)
        return cls.parse(raw)

    def check_region(self, region: str | None) -> None:
        """`oci:region` must be a region OCI has (the table, or one the stack lists in extraRegions); the GPU jobs'
        results bucket needs one."""
        if region is None and self.jobs.enabled:
            raise ConfigError(
                "region", "is required with jobs: the results bucket lives in one region", namespace="oci"
            )
        known = (*OCI_REGIONS, *self.extra_regions)
        if region is not None and region not in known:
            close = difflib.get_close_matches(region, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                "region",
                f"{region} is not an OCI region; {hint}a region newer than this program's table goes in "
                "pixelstream:extraRegions",
                namespace="oci",
            )

    def workloads(self) -> list[WorkloadConfig]:
        """The configuration of every workload the stack may run (each a top-level key)."""
        return list(self.workload_keys().values())

    def workload_keys(self) -> dict[str, WorkloadConfig]:
        """Every workload's configuration by its top-level key."""
        fields = type(self).model_fields
        values = {field.alias or name: getattr(self, name) for name, field in fields.items()}
        return {key: value for key, value in values.items() if isinstance(value, WorkloadConfig)}

    @property
    def secrets(self) -> frozenset[str]:
        """Plain text of the stack's secret config values, to be kept secret wherever they are used."""
        return self._secrets

    @property
    def vcn_native_pods(self) -> bool:
        return self.cluster.cni == "vcnNative"

    def availability_domain_names(self, pool: str, region_domains: Sequence[str]) -> list[str]:
        """The pool's availability domain indexes resolved against the region's domain names."""
        indexes = dict(self.node_pools.items())[pool].availability_domains
        for index in indexes:
            if index > len(region_domains):
                raise ConfigError(
                    f"nodePools.{pool}.availabilityDomains",
                    f"{index} is not an availability domain of this region, which has {len(region_domains)} "
                    f"(allowed: 1-{len(region_domains)})",
                )
        return [region_domains[i - 1] for i in indexes]


# The stack file's keys in this namespace, as the stack config's fields name them; the ones that are plain strings
# (every other key holds structured config, read as JSON).
TOP_LEVEL_KEYS = tuple(field.alias or name for name, field in StackConfig.model_fields.items())
STRING_KEYS = ("compartmentId", "environment")


def _configured_keys(namespace: str) -> set[str]:
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{namespace}:")}


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read this stack's config namespace and validate it; `secrets` holds the plain text of its secret values."""
    from pulumi.runtime.config import is_config_secret

    config = pulumi.Config(namespace)
    for key in sorted(_configured_keys(namespace)):
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(key, f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}", namespace)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        try:
            value = config.get(key) if key in STRING_KEYS else config.get_object(key)
        except pulumi.ConfigTypeError:
            raise ConfigError(key, "is not valid YAML/JSON for a structured value", namespace) from None
        if value is not None:
            raw[key] = value
    secret_keys = [key for key in raw if is_config_secret(f"{namespace}:{key}")]
    paths = secret_paths(namespace, secret_keys, raw, pulumi.get_stack())
    secrets = secret_values(raw, paths)
    stack_config = StackConfig.parse(raw, secrets, encrypted=paths)
    stack_config.check_region(pulumi.Config("oci").get("region"))
    stack_config._secrets = secrets
    return stack_config


def _workload_credentials() -> list[KeyPattern]:
    found = []
    for name, field in StackConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, WorkloadConfig):
            found += [(field.alias or name, *pattern) for pattern in annotation.CREDENTIALS]
    return found


# Every credential key of every layer (stack-file key paths; "*" any key or index).
CREDENTIALS: tuple[KeyPattern, ...] = (*OCI_CREDENTIALS, *_workload_credentials())


def credential_paths(raw: Mapping[str, Any]) -> list[KeyPath]:
    """The leaves of `raw` at or under a credential key."""
    return [path for path in leaves(dict(raw)) if any(under(path, pattern) for pattern in CREDENTIALS)]


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def check_credentials_encrypted(raw: Mapping[str, Any], secret: Collection[KeyPath]) -> None:
    """Every credential the stack sets must be a secret (`secure:` in the stack file): one line naming the first
    one in plain text, without its value. A value of the wrong shape is left to the type check (which does not
    show it either)."""
    for path in credential_paths(raw):
        if not any(matches(path, pattern) for pattern in CREDENTIALS):
            continue
        if not any(path[: len(s)] == tuple(s) for s in secret):
            key = _dotted(path)
            raise ConfigError(
                key,
                f"is plain text in the stack file; store it encrypted: pulumi config set --secret --path {key} <value>",
            )
