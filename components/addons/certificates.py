"""CertManager: cert-manager with its CRDs, then Let's Encrypt ACME issuers solving HTTP-01 through nginx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..constants import INGRESS_CLASS
from .charts import CHARTS, PART_OF, Chart, ReleaseArgs, namespace, release

ACME_SERVERS = {
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory",
}


@dataclass(kw_only=True)
class CertManagerArgs(ReleaseArgs):
    email: str | None = None
    """ACME account contact; optional for Let's Encrypt."""
    ingress_class: str = INGRESS_CLASS
    chart: Chart = CHARTS["cert-manager"]


def acme_issuer_spec(server: str, secret_name: str, email: str | None, ingress_class: str) -> dict[str, Any]:
    acme: dict[str, Any] = {
        "server": server,
        "privateKeySecretRef": {"name": secret_name},
        "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class}}}],
    }
    if email:
        acme["email"] = email
    return {"acme": acme}


class CertManager(pulumi.ComponentResource):
    """cert-manager and two ClusterIssuers. Outputs: `issuers` (`staging`, `prod` -> ClusterIssuer name)."""

    issuers: dict[str, str]

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:CertManager", name, None, opts)
        ns = namespace("cert-manager", self)
        on_default_pool = {"nodeSelector": args.nodes.node_selector()}
        values = {
            "crds": {"enabled": True, "keep": True},
            "global": on_default_pool,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        }
        chart = release(self, args, ns, values)
        # Issuers are custom resources of cert-manager: they can only be created once its CRDs and webhook serve.
        for issuer, server in ACME_SERVERS.items():
            k8s.apiextensions.CustomResource(
                issuer,
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata={"name": issuer, "labels": PART_OF},
                spec=acme_issuer_spec(server, issuer, args.email, args.ingress_class),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[chart]),
            )
        self.issuers = {"staging": "letsencrypt-staging", "prod": "letsencrypt-prod"}
        self.register_outputs({"issuers": self.issuers})
