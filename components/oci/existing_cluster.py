"""ExistingCluster: a Kubernetes cluster this stack did not create (an on-premises kubeadm cluster, another
stack's OKE cluster), reached through a kubeconfig from secret config or from another stack's output."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(kw_only=True)
class ExistingClusterArgs:
    kubernetes_version: str
    """The cluster's version, as its operator states it (the charts are rendered for it)."""
    kubeconfig: pulumi.Input[str] | None = None
    """The kubeconfig itself (from secret config); or"""
    stack_reference: str | None = None
    """the stack (`organization/project/stack`) whose output `stack_output` holds it."""
    stack_output: str = "kubeconfig"

    def validate(self) -> None:
        if (self.kubeconfig is None) == (self.stack_reference is None):
            raise ValueError("give exactly one of kubeconfig and stack_reference")


class ExistingCluster(pulumi.ComponentResource):
    """Outputs: `provider`, the Kubernetes provider every in-cluster resource goes through; `kubernetes_version`;
    `cluster_id`, None (no OKE cluster, so no OKE add-ons)."""

    provider: k8s.Provider
    kubernetes_version: str
    cluster_id: None

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__("pixelstream:index:ExistingCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.stack_reference is not None:
            source = pulumi.StackReference(f"{name}-source", stack_name=args.stack_reference, opts=child)
            kubeconfig = source.get_output(args.stack_output)
        else:
            kubeconfig = pulumi.Output.from_input(args.kubeconfig)
        # A credential, whichever way it came: secret in the state and every preview.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=pulumi.Output.secret(kubeconfig), opts=child)
        self.kubernetes_version = args.kubernetes_version
        self.cluster_id = None
        self.register_outputs({})
