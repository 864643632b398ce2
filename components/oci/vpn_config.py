"""`network.onPremises`: the networks a site-to-site VPN joins to the VCN, how the two tunnels route, and the
traffic that may cross."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Literal

from pydantic.alias_generators import to_camel

from ..config_base import Cidr, ConfigError, ConfigModel, KeyPattern, check_unique

if TYPE_CHECKING:
    from ..config import StackConfig

# Oracle's own BGP ASN in the commercial cloud: the on-premises side cannot use it.
ORACLE_BGP_ASN = 31898
TUNNELS = 2
# The tunnels' pre-shared keys: `secure:` in the stack file, never repeated in a message.
VPN_CREDENTIALS: tuple[KeyPattern, ...] = (("network", "onPremises", "sharedSecrets", "*"),)
# OCI: a shared secret of at most 255 letters, digits and spaces.
_SHARED_SECRET = re.compile(r"^[A-Za-z0-9 ]{1,255}$")
# Addresses a VPN device on the internet cannot have.
_NOT_PUBLIC = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        *("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"),
        *("192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"),
    )
)
# Inside tunnel interfaces: link-local or private /30 or /31 (OCI "BGP for Site-to-Site VPN").
_INSIDE_RANGES = tuple(
    ipaddress.IPv4Network(c) for c in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


class BgpTunnelConfig(ConfigModel):
    """One tunnel's inside interface addresses for BGP, as `address/prefix`: two addresses of one /30 or /31 in
    169.254.0.0/16 or a private range, not the other tunnel's."""

    customer_interface_ip: str
    """Your side's address, such as 169.254.10.2/30."""
    oracle_interface_ip: str
    """Oracle's side, in the same /30 or /31."""


class OnPremisesServiceConfig(ConfigModel):
    """Each: a name, and a protocol with a port or a range."""

    name: str
    """A short lowercase name (letters, digits, dashes, at most 32), unique in the list."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """Its transport protocol."""
    port: int
    """Its port, 1-65535."""
    end_port: int | None = None
    """The last port of a range starting at `port`, at most 65535."""


class OnPremisesConfig(ConfigModel):
    cidrs: list[Cidr] = []
    """The on-premises networks; empty: no VPN (and no other key of onPremises). None may overlap the VCN,
    cluster.servicesCidr, flannel's cluster.podsCidr or each other, or be larger than a /8."""
    cpe_ip_address: str | None = None
    """Required with cidrs: the public IPv4 address of your VPN device (CPE); not private, loopback, CGNAT or
    multicast."""
    routing: Literal["static", "bgp"] = "static"
    """How both tunnels learn routes: the IPSec connection's static routes (the on-premises CIDRs), or BGP."""
    customer_bgp_asn: int | None = None
    """bgp only (required there): your side's ASN, 1-4294967295, not Oracle's 31898."""
    bgp_tunnels: list[BgpTunnelConfig] = []
    """bgp only (required there): both tunnels' inside interface addresses."""
    shared_secrets: list[str] = []
    """Both tunnels' pre-shared keys (1-255 letters, digits and spaces), as secrets: `pulumi config set --secret
    --path 'network.onPremises.sharedSecrets[0]' ...`; empty: 64 random characters each, exported as the secret
    `vpnSharedSecrets`."""
    ike_version: Literal["V1", "V2"] = "V2"
    """The IKE version of both tunnels."""
    kubernetes_api: bool = False
    """The on-premises networks may reach the cluster's Kubernetes API (6443)."""
    object_storage: bool = False
    """The on-premises networks reach Object Storage (all Oracle services, the Oracle Services Network) privately,
    through the VCN's service gateway."""
    services: list[OnPremisesServiceConfig] = []
    """What the cluster's system pods and worker nodes may reach on the on-premises networks (`tcp` or `udp`, a
    port or a range): nothing else goes there."""

    @property
    def enabled(self) -> bool:
        return bool(self.cidrs)


def check_on_premises(config: StackConfig) -> None:
    """The VPN's settings, when the stack has on-premises networks; none of them without."""
    vpn = config.network.on_premises
    path = "network.onPremises"
    if not vpn.enabled:
        if vpn.model_fields_set:
            key = to_camel(sorted(vpn.model_fields_set)[0])
            raise ConfigError(f"{path}.{key}", "needs network.onPremises.cidrs, the networks the VPN reaches")
        return
    _check_cidrs(config)
    if vpn.cpe_ip_address is None:
        raise ConfigError(f"{path}.cpeIpAddress", "is required: the public IP address of your VPN device")
    try:
        address = ipaddress.IPv4Address(vpn.cpe_ip_address)
    except ValueError:
        raise ConfigError(f"{path}.cpeIpAddress", f"{vpn.cpe_ip_address} is not an IPv4 address") from None
    if any(address in network for network in _NOT_PUBLIC):
        raise ConfigError(
            f"{path}.cpeIpAddress", f"{address} is not a public address; OCI reaches the VPN device over the internet"
        )
    if vpn.shared_secrets and len(vpn.shared_secrets) != TUNNELS:
        raise ConfigError(
            f"{path}.sharedSecrets", f"has {len(vpn.shared_secrets)}; give one per tunnel ({TUNNELS}) or none"
        )
    for index, secret in enumerate(vpn.shared_secrets):
        if not _SHARED_SECRET.match(secret):
            # A secret: the message never repeats it.
            raise ConfigError(
                f"{path}.sharedSecrets[{index}]", "(secret, not shown) is not 1-255 letters, digits and spaces"
            )
    _check_routing(vpn)
    for index, service in enumerate(vpn.services):
        last = service.end_port if service.end_port is not None else service.port
        if not 1 <= service.port <= last <= 65535:
            raise ConfigError(f"{path}.services[{index}]", f"{service.port}-{last} is not a port range within 1-65535")
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", service.name):
            raise ConfigError(f"{path}.services[{index}].name", f"{service.name!r} is not a short lowercase name")
    check_unique(f"{path}.services", [s.name for s in vpn.services])


def _check_cidrs(config: StackConfig) -> None:
    """On-premises networks are routed through the DRG: they must not overlap anything the cluster routes."""
    vpn, cluster = config.network.on_premises, config.cluster
    path = "network.onPremises.cidrs"
    check_unique(path, vpn.cidrs)
    ours = [("the VCN", config.network.vcn_cidr), ("cluster.servicesCidr", cluster.services_cidr)]
    if not config.vcn_native_pods:
        ours.append(("cluster.podsCidr", cluster.pods_cidr))
    seen: list[ipaddress.IPv4Network] = []
    for index, cidr in enumerate(vpn.cidrs):
        network = ipaddress.IPv4Network(cidr)
        if network.prefixlen < 8:
            raise ConfigError(f"{path}[{index}]", f"{cidr} is larger than /8; list the on-premises networks themselves")
        for what, other in ours:
            if network.overlaps(ipaddress.IPv4Network(other)):
                raise ConfigError(
                    f"{path}[{index}]", f"{cidr} overlaps {what} ({other}); on-premises networks must not"
                )
        for other_network in seen:
            if network.overlaps(other_network):
                raise ConfigError(f"{path}[{index}]", f"{cidr} overlaps {other_network}, listed before it")
        seen.append(network)


def _check_routing(vpn: OnPremisesConfig) -> None:
    path = "network.onPremises"
    if vpn.routing == "static":
        for key, value in (("customerBgpAsn", vpn.customer_bgp_asn), ("bgpTunnels", vpn.bgp_tunnels or None)):
            if value is not None:
                raise ConfigError(f"{path}.{key}", "is only used with routing: bgp")
        return
    asn = vpn.customer_bgp_asn
    if asn is None:
        raise ConfigError(f"{path}.customerBgpAsn", "is required with routing: bgp (your side's ASN)")
    if not 1 <= asn <= 4294967295 or asn == ORACLE_BGP_ASN:
        raise ConfigError(
            f"{path}.customerBgpAsn",
            f"{asn} is not an ASN your side can use (1-4294967295, not Oracle's {ORACLE_BGP_ASN})",
        )
    if len(vpn.bgp_tunnels) != TUNNELS:
        raise ConfigError(
            f"{path}.bgpTunnels", f"has {len(vpn.bgp_tunnels)}; routing: bgp needs both tunnels' inside addresses"
        )
    used: list[ipaddress.IPv4Network] = []
    for index, tunnel in enumerate(vpn.bgp_tunnels):
        where = f"{path}.bgpTunnels[{index}]"
        interfaces = []
        for key in ("customer_interface_ip", "oracle_interface_ip"):
            text = getattr(tunnel, key)
            try:
                interface = ipaddress.IPv4Interface(text)
            except ValueError:
                raise ConfigError(
                    f"{where}.{to_camel(key)}", f"{text} is not an address/prefix such as 169.254.10.2/30"
                ) from None
            if interface.network.prefixlen not in (30, 31) or not any(
                interface.network.subnet_of(r) for r in _INSIDE_RANGES
            ):
                raise ConfigError(
                    f"{where}.{to_camel(key)}", f"{text} is not a /30 or /31 in 169.254.0.0/16 or a private range"
                )
            interfaces.append(interface)
        customer, oracle = interfaces
        if customer.network != oracle.network or customer.ip == oracle.ip:
            raise ConfigError(
                f"{where}.oracleInterfaceIp", f"{oracle} and {customer} must be two addresses of one /30 or /31"
            )
        if any(customer.network.overlaps(n) for n in used):
            raise ConfigError(f"{where}.customerInterfaceIp", f"{customer.network} is already the other tunnel's")
        used.append(customer.network)
