"""What the orchestrator and the workers share: go-livepeer run as a non-root user with a read-only root, its
data directory and /tmp on emptyDirs, the shared secret from a mounted file, and a probe of its CLI status."""

from __future__ import annotations

from typing import Any

import pulumi

# go-livepeer's image sets no user but needs nothing of root: it writes only to its data directory (its
# database, and the orchestrator's TLS key). Given `-dataDir`, it never looks the user up (this one has no
# passwd entry; cmd/livepeer/starter/starter.go does so only for a default under $HOME).
LIVEPEER_UID = 10001
DATA_DIR = "/data"
# `-orchSecret` reads a file when given its path (common.ReadFromFile; a missing file would be taken as the secret
# itself, so the mount and the flag come from this one constant).
SECRET_FILE = "/etc/livepeer/secret/orch-secret"
SECRET_KEY = "secret"

# GET /status on go-livepeer's CLI server, which listens on loopback only (its default): the image has bash but
# neither curl nor wget. Argument: the port.
_STATUS_SCRIPT = (
    'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "GET /status HTTP/1.0\\r\\n\\r\\n" >&3 '
    '&& read -r status <&3 && [[ "$status" == *" 200 "* ]]'
)


def livepeer_status_probe(port: int, period: int) -> dict[str, Any]:
    """A probe that passes while go-livepeer's CLI server answers /status on loopback `port`."""
    return {
        "exec": {"command": ["bash", "-c", _STATUS_SCRIPT, str(port)]},
        "periodSeconds": period,
        "failureThreshold": 3,
        "timeoutSeconds": 3,
    }


def livepeer_volumes(secret_name: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The shared secret (readable by the pod's fsGroup only), the data directory and /tmp."""
    return [
        {
            "name": "orchestrator-secret",
            "secret": {
                "secretName": secret_name,
                "defaultMode": 0o440,
                "items": [{"key": SECRET_KEY, "path": SECRET_FILE.rsplit("/", 1)[1]}],
            },
        },
        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]


def livepeer_mounts() -> list[dict[str, Any]]:
    return [
        {"name": "orchestrator-secret", "mountPath": SECRET_FILE.rsplit("/", 1)[0], "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
