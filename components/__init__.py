"""Pulumi components for a GPU pixel-streaming platform on Oracle Container Engine for Kubernetes (OKE)."""

from .cluster import OkeCluster, OkeClusterArgs
from .config import ConfigError, StackConfig, load_stack_config
from .constants import GPU_NODE_LABEL, GPU_TAINT, TURN_NODE_LABEL, TURN_TAINT, Taint
from .network import Network, NetworkArgs
from .node_pool import NodePool, NodePoolArgs, select_node_image, taint_cloud_init
from .security import SecurityRule, UnsafeNetworkError, platform_security_rules
from .shapes import FLEX_SHAPES, GPU_SHAPES, STREAMING_GPU_SHAPES

__all__ = [
    "FLEX_SHAPES",
    "GPU_NODE_LABEL",
    "GPU_SHAPES",
    "GPU_TAINT",
    "STREAMING_GPU_SHAPES",
    "TURN_NODE_LABEL",
    "TURN_TAINT",
    "ConfigError",
    "Network",
    "NetworkArgs",
    "NodePool",
    "NodePoolArgs",
    "OkeCluster",
    "OkeClusterArgs",
    "SecurityRule",
    "StackConfig",
    "Taint",
    "UnsafeNetworkError",
    "load_stack_config",
    "platform_security_rules",
    "select_node_image",
    "taint_cloud_init",
]
