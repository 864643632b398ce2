"""Pulumi components for a GPU pixel-streaming platform on Oracle Container Engine for Kubernetes (OKE)."""

from .certificates import CertManager, CertManagerArgs
from .charts import CHARTS, Chart
from .cluster import OkeCluster, OkeClusterArgs
from .cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from .config import ConfigError, StackConfig, load_stack_config
from .constants import GPU_NODE_LABEL, GPU_TAINT, TURN_NODE_LABEL, TURN_TAINT, Taint
from .custom_metrics import ADAPTER_RULES, POOL_RATIO_METRIC, CustomMetricsAdapter, CustomMetricsAdapterArgs
from .dcgm_exporter import DcgmExporter, DcgmExporterArgs
from .gpu_capacity import GpuCapacity, GpuCapacityArgs
from .gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from .ingress import IngressController, IngressControllerArgs
from .metrics_server import MetricsServer, MetricsServerArgs
from .monitoring import Monitoring, MonitoringArgs
from .network import Network, NetworkArgs
from .node_pool import NodePool, NodePoolArgs, select_node_image, taint_cloud_init
from .pixel_streaming import PixelStreaming, PixelStreamingArgs
from .routing import Routing, RoutingArgs
from .secrets import protect_resources, protected
from .security import SecurityRule, UnsafeNetworkError, platform_security_rules
from .shapes import FLEX_SHAPES, GPU_SHAPES, STREAMING_GPU_SHAPES
from .streaming import AutoscalingSettings, StreamerSettings, Streaming, StreamingArgs
from .turn import Turn, TurnArgs, TurnServerSettings

__all__ = [
    "ADAPTER_RULES",
    "CHARTS",
    "FLEX_SHAPES",
    "GPU_NODE_LABEL",
    "GPU_SHAPES",
    "GPU_TAINT",
    "POOL_RATIO_METRIC",
    "STREAMING_GPU_SHAPES",
    "TURN_NODE_LABEL",
    "TURN_TAINT",
    "AutoscalingSettings",
    "CertManager",
    "CertManagerArgs",
    "Chart",
    "ClusterAutoscaler",
    "ClusterAutoscalerArgs",
    "ConfigError",
    "CustomMetricsAdapter",
    "CustomMetricsAdapterArgs",
    "DcgmExporter",
    "DcgmExporterArgs",
    "GpuCapacity",
    "GpuCapacityArgs",
    "GpuDevicePlugin",
    "GpuDevicePluginArgs",
    "IngressController",
    "IngressControllerArgs",
    "MetricsServer",
    "MetricsServerArgs",
    "Monitoring",
    "MonitoringArgs",
    "Network",
    "NetworkArgs",
    "NodePool",
    "NodePoolArgs",
    "OkeCluster",
    "OkeClusterArgs",
    "PixelStreaming",
    "PixelStreamingArgs",
    "Routing",
    "RoutingArgs",
    "SecurityRule",
    "StackConfig",
    "StreamerSettings",
    "Streaming",
    "StreamingArgs",
    "Taint",
    "Turn",
    "TurnArgs",
    "TurnServerSettings",
    "UnsafeNetworkError",
    "load_stack_config",
    "platform_security_rules",
    "protect_resources",
    "protected",
    "select_node_image",
    "taint_cloud_init",
]
