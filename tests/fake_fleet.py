"""A simulation fleet as the Kubernetes API shows it, for the orchestration service's tests: StatefulSets
`sim-<i>` and their pods, with the StatefulSet controller's part played at once (scaling to 1 makes the pod,
to 0 removes it, a deleted pod comes back)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from fake_kube import Call, Route

NAMESPACE = "sim"
FLEET_LABELS = {"app.kubernetes.io/name": "isaac-sim", "app.kubernetes.io/part-of": "pixelstream"}


def pod(index: int, generation: int, phase: str = "Running", ready: bool = True, waiting: str | None = None) -> dict:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    return {
        "metadata": {
            "name": f"sim-{index}-0",
            "uid": f"uid-{index}-{generation}",
            "labels": {**FLEET_LABELS, "pixelstream/instance": str(index)},
        },
        "spec": {"nodeName": f"gpu-node-{index % 2}"},
        "status": {
            "phase": phase,
            "podIP": f"10.0.192.{10 + index}",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "isaac-sim", "restartCount": 0, "state": state}],
        },
    }


@dataclass
class FakeFleet:
    """`replicas`: each StatefulSet's spec.replicas; `pods`: the pods that exist, by name."""

    instances: int
    replicas: dict[str, int] = field(default_factory=dict)
    pods: dict[str, dict] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=lambda: [f"[{n}s] [Info] line {n}" for n in range(300)])
    _generations: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for index in range(self.instances):
            self.set(index, running=index == 0)

    def set(self, index: int, running: bool, **pod_state: object) -> None:
        """Put instance `index` in a state: running (its pod as `pod_state` says) or stopped."""
        self.replicas[f"sim-{index}"] = 1 if running else 0
        self.pods.pop(f"sim-{index}-0", None)
        if running:
            self.pods[f"sim-{index}-0"] = pod(index, next(self._generations), **pod_state)  # type: ignore[arg-type]

    def routes(self) -> dict[tuple[str, str], Route]:
        apps = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"
        core = f"/api/v1/namespaces/{NAMESPACE}/pods"
        routes: dict[tuple[str, str], Route] = {("GET", apps): self._statefulsets, ("GET", core): self._pods}
        for index in range(self.instances):
            routes[("PATCH", f"{apps}/sim-{index}/scale")] = lambda call, i=index: self._scale(i, call)
            routes[("DELETE", f"{core}/sim-{index}-0")] = lambda call, i=index: self._delete(i)
            routes[("GET", f"{core}/sim-{index}-0/log")] = lambda call, i=index: self._log(i, call)
        return routes

    def _statefulsets(self, call: Call) -> tuple[int, dict]:
        assert call.query == {"labelSelector": ["app.kubernetes.io/name=isaac-sim"]}
        items = [{"metadata": {"name": name}, "spec": {"replicas": count}} for name, count in self.replicas.items()]
        return 200, {"kind": "StatefulSetList", "items": items}

    def _pods(self, call: Call) -> tuple[int, dict]:
        assert call.query == {"labelSelector": ["app.kubernetes.io/name=isaac-sim"]}
        return 200, {"kind": "PodList", "items": list(self.pods.values())}

    def _scale(self, index: int, call: Call) -> tuple[int, dict]:
        assert call.content_type == "application/merge-patch+json", call.content_type
        replicas = call.body["spec"]["replicas"]
        self.set(index, running=replicas == 1)
        return 200, {"kind": "Scale", "spec": {"replicas": replicas}}

    def _delete(self, index: int) -> tuple[int, dict]:
        name = f"sim-{index}-0"
        if name not in self.pods:
            return 404, {"kind": "Status", "code": 404}
        # The StatefulSet controller makes the pod again under the same name.
        self.set(index, running=True)
        return 200, {"kind": "Pod", "metadata": {"name": name}}

    def _log(self, index: int, call: Call) -> tuple[int, str]:
        assert call.query["container"] == ["isaac-sim"], call.query
        tail = int(call.query["tailLines"][0])
        return 200, "\n".join(f"sim-{index} {line}" for line in self.log_lines[-tail:]) + "\n"
