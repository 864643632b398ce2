"""Pod-deletion-cost agent (sidecar of each stream pod).

Sets the pod's `controller.kubernetes.io/pod-deletion-cost` annotation to the number of players connected to
its signalling server, so that scaling in removes idle streams first; and, while any player is connected,
`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, so that the cluster autoscaler never drains the
node under a session. When the last player leaves the annotation is removed and the node may go again. It
patches only when something changes, which keeps API traffic to one request per change.

Environment: POD_NAME, POD_NAMESPACE, METRICS_URL (the signalling server's /custom metrics),
INTERVAL_SECONDS (5); Kubernetes access as in kube.py.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request

import kube

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
METRIC = "signalserver_player_socket_connections"


def players(metrics_text: str) -> int | None:
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name == METRIC:
            return int(float(value.split()[0]))
    return None


def wanted(count: int) -> dict[str, str | None]:
    """The annotations for `count` players; None removes one (JSON merge patch)."""
    return {ANNOTATION: str(count), SAFE_TO_EVICT: "false" if count > 0 else None}


class Agent:
    def __init__(self, namespace: str, pod: str, metrics_url: str) -> None:
        self.path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        self.metrics_url = metrics_url
        self.started = False
        self.annotations: dict[str, str | None] = {}

    def start(self) -> None:
        """Learn the annotations the pod already has (after a restart of this container)."""
        present = kube.call("GET", self.path).get("metadata", {}).get("annotations", {})
        self.annotations = {key: present.get(key) for key in (ANNOTATION, SAFE_TO_EVICT)}
        self.started = True

    def step(self) -> bool:
        """Read the player count once; patch the pod if its annotations should change. Whether a patch was sent."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            count = players(response.read().decode())
        if count is None or wanted(count) == self.annotations:
            return False
        body = {"metadata": {"annotations": wanted(count)}}
        kube.call("PATCH", self.path, body, content_type="application/merge-patch+json")
        self.annotations = wanted(count)
        return True


def main() -> None:
    agent = Agent(os.environ["POD_NAMESPACE"], os.environ["POD_NAME"], os.environ["METRICS_URL"])
    interval = float(os.environ.get("INTERVAL_SECONDS", "5"))
    while True:
        try:
            if not agent.started:
                agent.start()
            agent.step()
        except Exception as error:
            print(f"deletion-cost: {error}", file=sys.stderr, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
