"""Pulumi components for a GPU pixel-streaming platform on Oracle Container Engine for Kubernetes (OKE)."""

from .addons.certificates import CertManager, CertManagerArgs
from .addons.charts import CHARTS, Chart
from .addons.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from .addons.dcgm_exporter import DcgmExporter, DcgmExporterArgs
from .addons.gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from .addons.ingress import IngressController, IngressControllerArgs
from .addons.metrics_server import MetricsServer, MetricsServerArgs
from .addons.monitoring import Monitoring, MonitoringArgs
from .config import ConfigError, StackConfig, load_stack_config
from .constants import GPU_NODE_LABEL, GPU_TAINT, TURN_NODE_LABEL, TURN_TAINT, Taint
from .oci.cluster import OkeCluster, OkeClusterArgs
from .oci.existing_cluster import ExistingCluster, ExistingClusterArgs
from .oci.network import Network, NetworkArgs
from .oci.node_pool import NodePool, NodePoolArgs, select_node_image, taint_cloud_init
from .oci.security import SecurityRule, UnsafeNetworkError, platform_security_rules
from .oci.shapes import FLEX_SHAPES, GPU_SHAPES, STREAMING_GPU_SHAPES
from .oci.vpn import SiteToSiteVpn, SiteToSiteVpnArgs
from .placement import OKE_PLACEMENT, NodePlacement, Placement
from .platform import Platform, PlatformArgs
from .secrets import protect_resources, protected
from .workloads.ai_workers.component import AiWorkers, AiWorkersArgs, ModelSpec
from .workloads.ai_workers.orchestrator import AiOrchestrator, AiOrchestratorArgs
from .workloads.ai_workers.pool import AiWorkerPool, AiWorkerPoolArgs, RunnerSettings, WeightsSettings
from .workloads.gpu_jobs.component import GpuJobs, GpuJobsArgs
from .workloads.gpu_jobs.kafka import KafkaCluster, KafkaClusterArgs
from .workloads.gpu_jobs.results import JobResults, JobResultsArgs
from .workloads.pixel_streaming.component import PixelStreaming, PixelStreamingArgs
from .workloads.pixel_streaming.gpu_capacity import GpuCapacity, GpuCapacityArgs
from .workloads.pixel_streaming.routing import Routing, RoutingArgs
from .workloads.pixel_streaming.streaming import StreamerSettings, Streaming, StreamingArgs
from .workloads.pixel_streaming.turn import Turn, TurnArgs, TurnServerSettings
from .workloads.simulation.component import Simulation, SimulationArgs
from .workloads.simulation.fleet import SimulationFleet, SimulationFleetArgs
from .workloads.simulation.orchestrator import FleetOrchestrator, FleetOrchestratorArgs

__all__ = [
    "CHARTS",
    "FLEX_SHAPES",
    "GPU_NODE_LABEL",
    "GPU_SHAPES",
    "GPU_TAINT",
    "OKE_PLACEMENT",
    "STREAMING_GPU_SHAPES",
    "TURN_NODE_LABEL",
    "TURN_TAINT",
    "AiOrchestrator",
    "AiOrchestratorArgs",
    "AiWorkerPool",
    "AiWorkerPoolArgs",
    "AiWorkers",
    "AiWorkersArgs",
    "CertManager",
    "CertManagerArgs",
    "Chart",
    "ClusterAutoscaler",
    "ClusterAutoscalerArgs",
    "ConfigError",
    "DcgmExporter",
    "DcgmExporterArgs",
    "ExistingCluster",
    "ExistingClusterArgs",
    "FleetOrchestrator",
    "FleetOrchestratorArgs",
    "GpuCapacity",
    "GpuCapacityArgs",
    "GpuDevicePlugin",
    "GpuDevicePluginArgs",
    "GpuJobs",
    "GpuJobsArgs",
    "IngressController",
    "IngressControllerArgs",
    "JobResults",
    "JobResultsArgs",
    "KafkaCluster",
    "KafkaClusterArgs",
    "MetricsServer",
    "MetricsServerArgs",
    "ModelSpec",
    "Monitoring",
    "MonitoringArgs",
    "Network",
    "NetworkArgs",
    "NodePlacement",
    "NodePool",
    "NodePoolArgs",
    "OkeCluster",
    "OkeClusterArgs",
    "PixelStreaming",
    "PixelStreamingArgs",
    "Placement",
    "Platform",
    "PlatformArgs",
    "Routing",
    "RoutingArgs",
    "RunnerSettings",
    "SecurityRule",
    "Simulation",
    "SimulationArgs",
    "SimulationFleet",
    "SimulationFleetArgs",
    "SiteToSiteVpn",
    "SiteToSiteVpnArgs",
    "StackConfig",
    "StreamerSettings",
    "Streaming",
    "StreamingArgs",
    "Taint",
    "Turn",
    "TurnArgs",
    "TurnServerSettings",
    "UnsafeNetworkError",
    "WeightsSettings",
    "load_stack_config",
    "platform_security_rules",
    "protect_resources",
    "protected",
    "select_node_image",
    "taint_cloud_init",
]
