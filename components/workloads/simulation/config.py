"""The simulation fleet's configuration (`simulation.*`) and its checks."""

from __future__ import annotations

import ipaddress
import re
import string
from typing import TYPE_CHECKING, Annotated

from ...config_base import WIDEST_ALLOW_LIST_PREFIX, Cidr, ConfigError, ConfigModel, Range, check_unique, world_wide
from ...constants import BLOCK_VOLUME_GBS
from ...oci.shapes import GPU_SHAPES
from ...quantities import quantity
from ..config import (
    IngressConfig,
    WorkloadConfig,
    check_basic_auth_over_tls,
    check_host,
    check_images,
    check_namespace,
    check_path_prefix,
    check_pull_secrets,
    check_requests_and_limits,
)
from ..images import IMAGES, SIMULATION_IMAGES
from .fleet import InstanceSettings
from .requirements import FITTING_SHAPES, MINIMUM_GPU_MEMORY_GBS, below_minimum, unfit_gpu

if TYPE_CHECKING:
    from ...config import StackConfig

# Registries that refuse anonymous pulls of the image: NGC needs a login for Isaac Sim.
LOGIN_REGISTRIES = ("nvcr.io/",)
MAX_INSTANCES = 64
_API_KEY = re.compile(r"^\S{1,512}$")


class SimulationIngressConfig(IngressConfig):
    """As streaming.ingress. A host with addons.certManager on is required: every route of the fleet asks for a
    password (basic auth), which plain HTTP would send in clear."""

    path_prefix: str = "/sim"
    """The dashboard and API at `<prefix>/`: not empty, and not streaming's prefix on the same host."""
    allow_plain_http: bool = False
    """Serve the fleet's basic-auth routes over plain HTTP (no host with a certificate): development stacks only
    (environment: development), refused where the host has TLS, and every plan warns."""


class SimulationStreamsConfig(ConfigModel):
    viewer_cidrs: list[Cidr] = []
    """Who may watch and drive the instances (Isaac Sim's livestream asks no credential): with any, each instance's
    signalling and media are published by a network load balancer of its own, at a reserved IP on OKE; none
    publishes nothing."""
    allow_world_access: bool = False
    """The only way to list a network wider than a /8 (0.0.0.0/0 included) in viewerCidrs."""
    addresses: list[str] = []
    """An existing cluster only: the address its load balancer gives each instance's stream (one per instance, in
    order; on OKE each instance gets a reserved public IP)."""
    viewer_url: str | None = None
    """Where your viewer is served: an https:// URL template with {host} (and, if it needs them, {signalPort} and
    {mediaPort}), which the dashboard opens for each instance."""


class SimulationConfig(WorkloadConfig):
    """The simulation fleet ([Isaac Sim](docs/simulation.md)), off by default; it needs addons.ingressNginx."""

    enabled: bool = False
    """Deploy the fleet; its media relay is the streaming workload's TURN, so without streaming.enabled the plan
    warns."""
    namespace: str = "sim"
    accept_eula: bool = False
    """Must be true: the Isaac Sim container runs only with NVIDIA's Isaac Sim license accepted (ACCEPT_EULA=Y),
    and the stack says so."""
    instances: Annotated[int, Range(1, MAX_INSTANCES)] = 2
    """Isaac Sim instances, each a StatefulSet of one pod (sim-<i>-0); on OKE no more than the GPU pool holds at
    its largest (maxSize, else size, x GPUs per node x instancesPerGpu)."""
    instances_per_gpu: int = 1
    """1: a whole GPU each (`nvidia.com/gpu`); more: a time-sliced share each (`nvidia.com/gpu.shared`), and it
    must equal addons.gpuPlugin.streamsPerGpu, the shares the device plugin makes (more would not fit, fewer cannot
    be kept)."""
    allow_gpu_below_minimum: bool = False
    """Run instances with less GPU memory each than Isaac Sim's datacenter minimum (48 GB: an A10, or a shared
    L40S): every plan warns, and real scenes may run out of GPU memory. Refused where nothing is below it, and on
    existing clusters."""
    cpu: str = "4"
    """The Isaac Sim container's CPU request, at most cpuLimit."""
    cpu_limit: str = "8"
    """Its CPU limit."""
    memory: str = "16Gi"
    """Its memory request, at most memoryLimit."""
    memory_limit: str = "16Gi"
    """Its memory limit."""
    shm_size: str = "2Gi"
    """/dev/shm of each instance (a memory-backed emptyDir: it counts against memoryLimit, so below it)."""
    startup_timeout_seconds: Annotated[int, Range(60, 7200)] = 1200
    """How long an instance may take to say AppReady before the pod restarts."""
    cache_gbs: Annotated[int, Range(*BLOCK_VOLUME_GBS, "GB", "an OCI block volume's sizes")] = 50
    """Each instance's cache volume (Kit's shader, texture and package caches), kept across restarts and
    stops."""
    quit_when_viewer_leaves: bool = False
    """Isaac Sim's own default quits when a viewer disconnects (and the StatefulSet restarts it); a fleet meant to
    be watched keeps running."""
    images: dict[str, str] = {}
    """Override isaacsim (nvcr.io/nvidia/isaac-sim:6.0.1) or python with `repo:tag` or `repo@sha256:...`."""
    ngc_api_key: str | None = None
    """The NGC API key, refused in plain text (`pulumi config set --secret --path simulation.ngcApiKey <key>`): it
    becomes the image pull Secret `ngc-registry` (a `$oauthtoken` login to nvcr.io). Required for an nvcr.io image
    unless imagePullSecrets names a Secret."""
    image_pull_secrets: list[str] = []
    """Existing docker-registry Secrets in the namespace, on every pod."""
    ingress: SimulationIngressConfig = SimulationIngressConfig()
    streams: SimulationStreamsConfig = SimulationStreamsConfig()
    CREDENTIALS = (("ngcApiKey",),)

    def check(self, config: StackConfig) -> None:
        check_simulation(config)

    def image(self, name: str) -> str:
        return self.images.get(name, IMAGES[name])

    def settings(self) -> InstanceSettings:
        return InstanceSettings(
            cpu=self.cpu,
            cpu_limit=self.cpu_limit,
            memory=self.memory,
            memory_limit=self.memory_limit,
            shm_size=self.shm_size,
            shared_gpu=self.instances_per_gpu > 1,
            startup_timeout_seconds=self.startup_timeout_seconds,
            cache_gbs=self.cache_gbs,
            quit_when_viewer_leaves=self.quit_when_viewer_leaves,
        )


def check_simulation(config: StackConfig) -> None:
    """The fleet's keys, when it is enabled."""
    simulation = config.simulation
    if not simulation.accept_eula:
        raise ConfigError(
            "simulation.acceptEula",
            "false: the Isaac Sim container runs only with NVIDIA's Isaac Sim license accepted (ACCEPT_EULA=Y); "
            "read it and set simulation.acceptEula: true",
        )
    check_namespace(config, "simulation")
    check_images("simulation", simulation.images, SIMULATION_IMAGES)
    check_pull_secrets("simulation", simulation.image_pull_secrets)
    _check_pull_credentials(simulation)
    _check_instances(config)
    check_requests_and_limits("simulation", simulation)
    _check_shared_memory(simulation)
    _check_routing(config)
    _check_streams(config)


def _check_streams(config: StackConfig) -> None:
    """Who reaches the published streams, where they are, and the viewer they open in."""
    streams, path = config.simulation.streams, "simulation.streams"
    check_unique(f"{path}.viewerCidrs", streams.viewer_cidrs)
    for index, cidr in enumerate(streams.viewer_cidrs):
        if world_wide(cidr) and not streams.allow_world_access:
            raise ConfigError(
                f"{path}.viewerCidrs[{index}]",
                f"{cidr} is wider than a /{WIDEST_ALLOW_LIST_PREFIX}, the internet in all but name, and Isaac Sim's "
                "livestream asks no credential: whoever connects watches and drives the scene; list your operators' "
                f"networks, or set {path}.allowWorldAccess: true to accept that",
            )
    if config.cluster.oke and streams.addresses:
        raise ConfigError(f"{path}.addresses", "is for an existing cluster; on OKE each instance gets a reserved IP")
    wanted = config.simulation.instances if streams.viewer_cidrs and not config.cluster.oke else 0
    if len(streams.addresses) != wanted:
        raise ConfigError(
            f"{path}.addresses",
            f"lists {len(streams.addresses)} addresses; an existing cluster publishing the streams needs one per "
            f"instance ({wanted}), the address its load balancer gives each"
            if wanted
            else "is only used with viewerCidrs on an existing cluster",
        )
    for index, address in enumerate(streams.addresses):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ConfigError(f"{path}.addresses[{index}]", f"{address[:64]} is not an IPv4 address") from None
    if streams.viewer_url is not None:
        check_viewer_url(f"{path}.viewerUrl", streams.viewer_url)


VIEWER_FIELDS = ("host", "signalPort", "mediaPort")


def check_viewer_url(key: str, template: str) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = sorted(fields - set(VIEWER_FIELDS))
    if not template.startswith("https://") or unknown or "host" not in fields:
        raise ConfigError(
            key,
            f"{template[:80]} is not an https:// URL template with {{host}} (and optionally {{signalPort}}, "
            "{mediaPort}), such as https://viewer.example.com/?server={host}",
        )


def _check_pull_credentials(simulation: SimulationConfig) -> None:
    image = simulation.image("isaacsim")
    key = simulation.ngc_api_key
    if key is not None and not _API_KEY.match(key):
        raise ConfigError("simulation.ngcApiKey", "is empty or holds white space; paste the key as NGC shows it")
    if image.startswith(LOGIN_REGISTRIES) and key is None and not simulation.image_pull_secrets:
        raise ConfigError(
            "simulation.ngcApiKey",
            f"is required to pull {image} (NGC refuses anonymous pulls): "
            "pulumi config set --secret --path simulation.ngcApiKey <key>, or name an existing docker-registry "
            "Secret in simulation.imagePullSecrets",
        )


def _check_instances(config: StackConfig) -> None:
    """How many instances, and how they share GPUs: exactly as the device plugin shares them."""
    simulation, plugin = config.simulation, config.addons.gpu_plugin
    per_gpu = simulation.instances_per_gpu
    shares = plugin.streams_per_gpu if plugin.enabled else 1
    if per_gpu > shares:
        raise ConfigError(
            "simulation.instancesPerGpu",
            f"{per_gpu} is more instances per GPU than the GPU sharing allows: addons.gpuPlugin.streamsPerGpu makes "
            f"{shares} share{'s' if shares > 1 else ''} of each GPU",
        )
    if per_gpu < shares:
        raise ConfigError(
            "simulation.instancesPerGpu",
            f"{per_gpu} cannot be kept: the device plugin offers each GPU only as {shares} shares "
            f"(addons.gpuPlugin.streamsPerGpu), so up to {shares} instances land on one GPU; set {shares}",
        )
    if not config.cluster.oke:
        # An existing cluster's GPU nodes are its own: the stack knows their labels, not their number or model.
        if simulation.allow_gpu_below_minimum:
            raise ConfigError(
                "simulation.allowGpuBelowMinimum",
                "true only applies on OKE, where the stack knows the GPU pool's shape; size an existing cluster's "
                f"GPUs by Isaac Sim's minimum ({MINIMUM_GPU_MEMORY_GBS} GB each) yourself",
            )
        return
    pool = config.node_pools.gpu
    _check_gpu_fits(simulation, pool.shape)
    nodes = pool.largest_size
    gpus = GPU_SHAPES[pool.shape].gpus
    slots = nodes * gpus * per_gpu
    if simulation.instances > slots:
        raise ConfigError(
            "simulation.instances",
            f"{simulation.instances} do not fit the GPU pool, which holds at most {slots}: {nodes} node(s) of "
            f"{pool.shape} ({gpus} GPU(s) each) at {per_gpu} per GPU (nodePools.gpu, simulation.instancesPerGpu)",
        )


def _check_gpu_fits(simulation: SimulationConfig, shape: str) -> None:
    """RTX and NVENC always; Isaac Sim's minimum GPU memory per instance unless the stack accepts less."""
    unfit = unfit_gpu(shape)
    if unfit:
        raise ConfigError(*unfit)
    low = below_minimum(shape, simulation.instances_per_gpu)
    if low and not simulation.allow_gpu_below_minimum:
        key, problem = low
        raise ConfigError(
            key,
            f"{problem}; use {' or '.join(FITTING_SHAPES)} with one instance per GPU, or accept the risk with "
            "simulation.allowGpuBelowMinimum: true",
        )
    if not low and simulation.allow_gpu_below_minimum:
        raise ConfigError(
            "simulation.allowGpuBelowMinimum",
            f"true only applies below Isaac Sim's minimum; each instance here gets {shape}'s whole "
            f"{GPU_SHAPES[shape].gpu_memory_gbs} GB GPU",
        )


def simulation_warnings(config: StackConfig) -> list[str]:
    """What the fleet's config allows on purpose that a reviewer should see in every plan."""
    simulation = config.simulation
    if not (simulation.enabled and simulation.allow_gpu_below_minimum and config.cluster.oke):
        return []
    low = below_minimum(config.node_pools.gpu.shape, simulation.instances_per_gpu)
    return [f"simulation.allowGpuBelowMinimum: {low[1]}"] if low else []


def _check_shared_memory(simulation: SimulationConfig) -> None:
    try:
        shm = quantity(simulation.shm_size)
    except ValueError:
        raise ConfigError("simulation.shmSize", f"{simulation.shm_size} is not a memory quantity such as 2Gi") from None
    if shm <= 0:
        raise ConfigError("simulation.shmSize", f"{simulation.shm_size} is not above zero")
    if shm >= quantity(simulation.memory_limit):
        raise ConfigError(
            "simulation.shmSize",
            f"{simulation.shm_size} is not below memoryLimit ({simulation.memory_limit}): /dev/shm is memory the "
            "instance's limit counts, so the app would have nothing left",
        )


def _check_routing(config: StackConfig) -> None:
    simulation, streaming = config.simulation, config.streaming
    ingress = simulation.ingress
    check_host("simulation.ingress.host", ingress.host)
    check_path_prefix("simulation.ingress.pathPrefix", ingress.path_prefix, "/sim")
    if not ingress.path_prefix:
        raise ConfigError("simulation.ingress.pathPrefix", '"" would serve the fleet over every other route; use /sim')
    shared_host = streaming.enabled and streaming.ingress.host == ingress.host
    if shared_host and streaming.ingress.path_prefix == ingress.path_prefix:
        raise ConfigError(
            "simulation.ingress.pathPrefix",
            f"{ingress.path_prefix} is streaming.ingress.pathPrefix on the same host too; give each its own",
        )
    if not config.addons.ingress_nginx.enabled:
        raise ConfigError(
            "addons.ingressNginx.enabled",
            "false leaves the simulation fleet without its ingress controller; enable it or set simulation.enabled: "
            "false",
        )
    check_basic_auth_over_tls(
        config,
        "the fleet's dashboard",
        "simulation.ingress.host",
        ingress.host,
        "simulation.ingress.allowPlainHttp",
        ingress.allow_plain_http,
    )
