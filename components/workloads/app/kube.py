"""A minimal Kubernetes API client for the in-cluster helpers: the pod's service account, JSON over HTTPS."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from pathlib import Path
from typing import Any


def _service_account() -> Path:
    return Path(os.environ.get("SERVICE_ACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount"))


def api_base() -> str:
    explicit = os.environ.get("KUBERNETES_API")
    if explicit:
        return explicit.rstrip("/")
    return f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"


def call(method: str, path: str, body: Any = None, content_type: str = "application/json", text: bool = False) -> Any:
    """One API request with the service account's token; the response body decoded from JSON (or as text, for
    the endpoints that answer plain text, such as a pod's log)."""
    base = api_base()
    headers = {
        "Authorization": f"Bearer {(_service_account() / 'token').read_text().strip()}",
        "Accept": "text/plain" if text else "application/json",
    }
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type
    context = None
    if base.startswith("https://"):
        context = ssl.create_default_context(cafile=str(_service_account() / "ca.crt"))
    request = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.read().decode(errors="replace") if text else json.load(response)


def node_addresses(node: dict) -> dict[str, str]:
    """A Node's addresses by type (`ExternalIP`, `InternalIP`, ...), first of each type."""
    addresses: dict[str, str] = {}
    for address in node.get("status", {}).get("addresses", []):
        addresses.setdefault(address["type"], address["address"])
    return addresses


def node_ready(node: dict) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
