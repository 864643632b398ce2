"""TURN bootstrap (init container): completes coturn's configuration for the node it runs on.

Reads the node's public and private IPs from its Node object (the TURN pool's nodes have public IPs) and
writes the rendered template plus `listening-ip`, `relay-ip`, `external-ip=<public>/<private>` and the
`static-auth-secret` to the file coturn starts with.

Environment: NODE_NAME, TURN_SECRET_FILE (the file holding the shared secret), TEMPLATE (turnserver.conf
from the ConfigMap), OUTPUT; Kubernetes access as in kube.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import kube


def node_specific(public_ip: str, private_ip: str, secret: str) -> str:
    return (
        f"listening-ip={private_ip}\n"
        f"relay-ip={private_ip}\n"
        f"external-ip={public_ip}/{private_ip}\n"
        # The exporter (host network) listens on the private address only, never on the public one.
        f"prometheus-address={private_ip}\n"
        f"static-auth-secret={secret}\n"
    )


def main() -> int:
    node_name = os.environ["NODE_NAME"]
    addresses = kube.node_addresses(kube.call("GET", f"/api/v1/nodes/{node_name}"))
    if "ExternalIP" not in addresses or "InternalIP" not in addresses:
        print(f"turn-bootstrap: node {node_name} has no public IP ({addresses}); TURN nodes need one", file=sys.stderr)
        return 1
    template = Path(os.environ["TEMPLATE"]).read_text()
    secret = Path(os.environ["TURN_SECRET_FILE"]).read_text().strip()
    # Private from the first byte: the file holds the shared secret.
    descriptor = os.open(os.environ["OUTPUT"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.write(template + node_specific(addresses["ExternalIP"], addresses["InternalIP"], secret))
    print(f"turn-bootstrap: {node_name} relays as {addresses['ExternalIP']} (private {addresses['InternalIP']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
