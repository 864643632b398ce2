"""Pod-deletion-cost agent (sidecar of each stream pod).

Sets the pod's `controller.kubernetes.io/pod-deletion-cost` annotation to the number of players connected to
its signalling server, so that scaling in removes idle streams first. It patches only when the number
changes, which keeps API traffic to one request per change.

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
METRIC = "signalserver_player_socket_connections"


def players(metrics_text: str) -> int | None:
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name == METRIC:
            return int(float(value.split()[0]))
    return None


class Agent:
    def __init__(self, namespace: str, pod: str, metrics_url: str) -> None:
        self.path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        self.metrics_url = metrics_url
        self.started = False
        self.cost: str | None = None

    def start(self) -> None:
        """Learn the annotation the pod already has (after a restart of this container)."""
        pod = kube.call("GET", self.path)
        self.cost = pod.get("metadata", {}).get("annotations", {}).get(ANNOTATION)
        self.started = True

    def step(self) -> bool:
        """Read the player count once; patch the pod if it changed. Whether a patch was sent."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            count = players(response.read().decode())
        if count is None or str(count) == self.cost:
            return False
        body = {"metadata": {"annotations": {ANNOTATION: str(count)}}}
        kube.call("PATCH", self.path, body, content_type="application/merge-patch+json")
        self.cost = str(count)
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
