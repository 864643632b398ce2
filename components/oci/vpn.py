"""SiteToSiteVpn: the dynamic routing gateway (DRG), the customer-premises equipment (CPE) object and an IPSec
connection with both of its tunnels, configured for static routing or BGP; and what the on-premises VPN device
needs to know to bring the tunnels up.

The VCN side (the DRG's VCN attachment, routes to the on-premises networks, the security rules of what may
cross) is the Network's: it takes this component's `drg_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_oci as oci
import pulumi_random as random

from .vpn_config import ORACLE_BGP_ASN, TUNNELS

Routing = Literal["static", "bgp"]


@dataclass(kw_only=True)
class SiteToSiteVpnArgs:
    compartment_id: pulumi.Input[str]
    on_premises_cidrs: Sequence[str]
    """The on-premises networks: the IPSec connection's static routes."""
    cpe_ip_address: str
    """The on-premises VPN device's public IP address."""
    vcn_cidr: str
    """What the on-premises device routes through the tunnels (with static routing)."""
    routing: Routing = "static"
    customer_bgp_asn: int | None = None
    bgp_tunnels: Sequence[tuple[str, str]] = ()
    """BGP only: (customer, Oracle) inside interface address of each tunnel."""
    shared_secrets: Sequence[pulumi.Input[str]] = ()
    """One pre-shared key per tunnel; empty: generated."""
    ike_version: Literal["V1", "V2"] = "V2"
    object_storage: bool = False
    """The on-premises networks reach Oracle services through the VCN's service gateway."""
    freeform_tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.on_premises_cidrs:
            raise ValueError("on_premises_cidrs is empty: a VPN to nowhere")
        if self.shared_secrets and len(self.shared_secrets) != TUNNELS:
            raise ValueError(f"shared_secrets needs one per tunnel ({TUNNELS}) or none")
        if self.routing == "bgp" and (self.customer_bgp_asn is None or len(self.bgp_tunnels) != TUNNELS):
            raise ValueError("BGP routing needs customer_bgp_asn and both tunnels' inside addresses")


class SiteToSiteVpn(pulumi.ComponentResource):
    """Outputs: `drg_id`; `tunnel_ips` (Oracle's public IP of each tunnel); `device_config` (what to configure on
    the on-premises device, without the keys); `shared_secrets` (the keys, a secret)."""

    drg_id: pulumi.Output[str]
    tunnel_ips: list[pulumi.Output[str]]
    device_config: pulumi.Output[dict[str, Any]]
    shared_secrets: pulumi.Output[list[str]]

    def __init__(self, name: str, args: SiteToSiteVpnArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__("pixelstream:index:SiteToSiteVpn", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common = {"compartment_id": args.compartment_id, "freeform_tags": args.freeform_tags}
        drg = oci.core.Drg(f"{name}-drg", display_name=f"{name}-drg", **common, opts=child)
        cpe = oci.core.Cpe(
            f"{name}-cpe", display_name=f"{name}-cpe", ip_address=args.cpe_ip_address, **common, opts=child
        )
        connection = oci.core.Ipsec(
            f"{name}-ipsec",
            display_name=f"{name}-ipsec",
            cpe_id=cpe.id,
            drg_id=drg.id,
            # Required even with BGP (a new connection's tunnels start static); with BGP, routes come from the
            # sessions instead.
            static_routes=list(args.on_premises_cidrs),
            **common,
            opts=child,
        )
        secrets = [pulumi.Output.secret(s) for s in args.shared_secrets] or [
            pulumi.Output.secret(
                random.RandomPassword(f"{name}-tunnel-{i + 1}-secret", length=64, special=False, opts=child).result
            )
            for i in range(TUNNELS)
        ]
        tunnels = oci.core.get_ipsec_connection_tunnels_output(ipsec_id=connection.id).ip_sec_connection_tunnels
        managed = [self._tunnel(name, args, connection, tunnels, i, secrets[i]) for i in range(TUNNELS)]
        self.drg_id = drg.id
        self.tunnel_ips = [tunnel.vpn_ip for tunnel in managed]
        self.shared_secrets = pulumi.Output.secret(pulumi.Output.all(*secrets))
        self.device_config = pulumi.Output.all(*self.tunnel_ips).apply(lambda ips: device_config(args, ips))
        self.register_outputs(
            {"drg_id": self.drg_id, "tunnel_ips": self.tunnel_ips, "device_config": self.device_config}
        )

    def _tunnel(
        self,
        name: str,
        args: SiteToSiteVpnArgs,
        connection: oci.core.Ipsec,
        tunnels: pulumi.Output[Any],
        index: int,
        secret: pulumi.Output[str],
    ) -> oci.core.IpsecConnectionTunnelManagement:
        """One of the connection's two tunnels, with its routing, IKE version and key."""
        bgp = None
        if args.routing == "bgp":
            customer, oracle = args.bgp_tunnels[index]
            bgp = oci.core.IpsecConnectionTunnelManagementBgpSessionInfoArgs(
                customer_bgp_asn=str(args.customer_bgp_asn), customer_interface_ip=customer, oracle_interface_ip=oracle
            )
        return oci.core.IpsecConnectionTunnelManagement(
            f"{name}-tunnel-{index + 1}",
            ipsec_id=connection.id,
            tunnel_id=tunnels.apply(lambda found: found[index].id),
            display_name=f"{name}-tunnel-{index + 1}",
            routing=args.routing.upper(),
            bgp_session_info=bgp,
            shared_secret=secret,
            ike_version=args.ike_version,
            opts=pulumi.ResourceOptions(parent=self),
        )


def device_config(args: SiteToSiteVpnArgs, tunnel_ips: Sequence[str]) -> dict[str, Any]:
    """What the on-premises VPN device needs, per tunnel: Oracle's end, the IKE version, how routes are exchanged.
    The pre-shared keys are in the separate secret output."""
    tunnels = []
    for index, ip in enumerate(tunnel_ips):
        tunnel: dict[str, Any] = {"oracleVpnIp": ip, "ikeVersion": args.ike_version}
        if args.routing == "bgp":
            customer, oracle = args.bgp_tunnels[index]
            tunnel |= {"customerInterfaceIp": customer, "oracleInterfaceIp": oracle}
        tunnels.append(tunnel)
    config: dict[str, Any] = {
        "cpeIpAddress": args.cpe_ip_address,
        "routing": args.routing,
        "onPremisesCidrs": list(args.on_premises_cidrs),
        "tunnels": tunnels,
    }
    if args.routing == "bgp":
        config |= {"customerBgpAsn": args.customer_bgp_asn, "oracleBgpAsn": ORACLE_BGP_ASN}
    else:
        # Static routing: the device routes the VCN through both tunnels.
        config["routesThroughTunnels"] = [args.vcn_cidr]
    if args.object_storage:
        config["oracleServices"] = (
            "route the region's Oracle Services Network ranges (OCI's published IP ranges, tag OSN) through the "
            "tunnels" + (" (the DRG announces them over BGP)" if args.routing == "bgp" else "")
        )
    return config
