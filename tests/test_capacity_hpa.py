"""The simulator's HPA against the examples of the Kubernetes documentation (Horizontal Pod Autoscaling:
algorithm details, scaling policies, stabilization window, default behavior)."""

from __future__ import annotations

from pixelstream.tools.capacity.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Hpa,
    HpaSettings,
    Policy,
    Rules,
    usage_replicas,
)

NO_WINDOW_DOWN = Rules(0, DEFAULT_SCALE_DOWN.policies)


def test_ratio_doubles_or_halves_the_replicas() -> None:
    # "if the current metric value is 200m, and the desired value is 100m, the number of replicas will be
    # doubled ... If the current value is instead 50m, you'll halve the number of replicas"
    assert usage_replicas(current=4, ready=4, usage_ratio=200 / 100) == 8
    assert usage_replicas(current=4, ready=4, usage_ratio=50 / 100) == 2
    hpa = Hpa(1, 100, target=0.1, scale_down=NO_WINDOW_DOWN)
    assert hpa.sync(0, current=4, ready=4, metric=0.2) == 8
    assert hpa.sync(15, current=8, ready=8, metric=0.05) == 4


def test_no_scaling_within_the_tolerance() -> None:
    # "The control plane skips any scaling action if the ratio is sufficiently close to 1.0 (within a
    # globally-configurable tolerance, 0.1 by default)."
    hpa = Hpa(1, 100, target=1.0, scale_down=NO_WINDOW_DOWN)
    assert hpa.sync(0, current=10, ready=10, metric=1.05) == 10
    assert hpa.sync(15, current=10, ready=10, metric=0.95) == 10
    assert hpa.sync(30, current=10, ready=10, metric=1.15) == 12
    assert hpa.sync(45, current=12, ready=12, metric=0.85) == 11
    assert usage_replicas(current=10, ready=10, usage_ratio=1.15, tolerance=0.2) == 10


def test_proposals_count_only_ready_pods() -> None:
    # The replica calculator multiplies by the ready pods: pods still starting propose nothing yet.
    assert usage_replicas(current=6, ready=2, usage_ratio=2.0) == 4
    assert usage_replicas(current=6, ready=0, usage_ratio=3.0) == 0


def test_scale_down_stabilization_takes_the_highest_recent_recommendation() -> None:
    # "When the metrics indicate that the target should be scaled down the algorithm looks into previously
    # computed desired states, and uses the highest value from the specified interval."
    hpa = Hpa(1, 100, target=1.0, scale_down=Rules(300, DEFAULT_SCALE_DOWN.policies))
    assert hpa.sync(0, current=10, ready=10, metric=1.0) == 10
    for now in range(15, 300, 15):
        assert hpa.sync(now, current=10, ready=10, metric=0.5) == 10, now
    assert hpa.sync(300, current=10, ready=10, metric=0.5) == 5, "the 10 recommended at 0 has left the window"


def test_scale_up_stabilization_takes_the_lowest_recent_recommendation() -> None:
    hpa = Hpa(1, 100, target=1.0, scale_up=Rules(60, DEFAULT_SCALE_UP.policies), scale_down=NO_WINDOW_DOWN)
    assert hpa.sync(0, current=4, ready=4, metric=1.0) == 4
    assert hpa.sync(15, current=4, ready=4, metric=2.0) == 4
    assert hpa.sync(60, current=4, ready=4, metric=2.0) == 8


def test_scale_down_policies_as_in_the_documentation() -> None:
    # Pods 4 and Percent 10 per 60 s: "if there are 80 replicas and the target has to be scaled down to 10
    # replicas then during the first step 8 replicas will be reduced. In the next iteration when the number of
    # replicas is 72, 10% of the pods is 7.2 but the number is rounded up to 8 ... When the number of replicas
    # falls below 40 the first policy (Pods) is applied and 4 replicas will be reduced at a time."
    rules = Rules(0, (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    hpa = Hpa(1, 100, target=1.0, scale_down=rules)
    assert hpa.sync(0, current=80, ready=80, metric=10 / 80) == 72
    assert hpa.sync(15, current=72, ready=72, metric=10 / 72) == 72, "the period's budget is spent"
    assert hpa.sync(60, current=72, ready=72, metric=10 / 72) == 64
    low = Hpa(1, 100, target=1.0, scale_down=rules)
    assert low.sync(0, current=36, ready=36, metric=10 / 36) == 32


def test_select_policy_min_and_disabled() -> None:
    # "selectPolicy ... Min ... selects the policy which allows the smallest change"; "Disabled completely
    # disables scaling in that direction".
    rules = Rules(0, (Policy("Percent", 10, 60), Policy("Pods", 5, 60)), select="Min")
    assert Hpa(1, 100, target=1.0, scale_down=rules).sync(0, current=80, ready=80, metric=0.1) == 75
    assert Hpa(1, 100, target=1.0, scale_down=rules).sync(0, current=30, ready=30, metric=0.1) == 27
    disabled = Rules(0, rules.policies, select="Disabled")
    assert Hpa(1, 100, target=1.0, scale_down=disabled).sync(0, current=30, ready=30, metric=0.1) == 30


def test_default_scale_up_adds_four_pods_or_doubles_every_15_seconds() -> None:
    # "There are 2 policies where 4 pods or a 100% of the currently running replicas will be added every 15
    # seconds till the HPA reaches its steady state."
    hpa = Hpa(1, 1000, target=1.0)
    assert hpa.sync(0, current=1, ready=1, metric=100.0) == 5
    assert hpa.sync(5, current=5, ready=5, metric=100.0) == 5, "within the period"
    assert hpa.sync(15, current=5, ready=5, metric=100.0) == 10
    assert Hpa(1, 1000, target=1.0).sync(0, current=10, ready=10, metric=100.0) == 20


def test_stream_autoscaler_from_the_stacks_settings() -> None:
    # The reference's stream HPA: 2 pods or 10% per 15 s (the larger), scale-down stabilization 30 s.
    hpa = Hpa.from_settings(HpaSettings(min_replicas=1, max_replicas=40, target_pool_ratio=0.9))
    assert hpa.sync(0, current=4, ready=4, metric=9.0) == 6
    assert Hpa.from_settings(HpaSettings(max_replicas=40)).sync(0, current=30, ready=30, metric=9.0) == 33
    assert hpa.scale_down.stabilization_seconds == 30 and hpa.scale_down.policies == DEFAULT_SCALE_DOWN.policies


def test_replicas_stay_within_min_and_max() -> None:
    hpa = Hpa(2, 6, target=1.0, scale_down=NO_WINDOW_DOWN)
    assert hpa.sync(0, current=4, ready=4, metric=100.0) == 6
    assert hpa.sync(15, current=6, ready=6, metric=0.0) == 2
    assert hpa.sync(30, current=9, ready=9, metric=1.0) == 6, "above max: back to max"
    assert hpa.sync(45, current=1, ready=1, metric=1.0) == 2, "below min: up to min"
