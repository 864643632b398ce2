"""Scheduled capacity (streaming.capacity.schedules): the cron reading checked against croniter's, the KEDA-style
window (active from a start until the next end) across midnight and a daylight-saving change, the stack's checks,
the builds document, the session service raising a build's buffer while a schedule is active, and the simulator
replaying a launch with one."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import ROOT
from croniter import croniter
from test_addons import plan_with
from test_session_scaler import FakeCluster, FakePod, round_of, service
from test_workload import builds_document

from pixelstream.tools.capacity import Timings, load_stack, load_trace, node_hourly_usd, simulate
from pixelstream.tools.capacity.report import over_seeds, summarize
from pixelstream.tools.capacity.stack import REFERENCE_STACK
from pixelstream.tools.offline import main as plan_main
from pixelstream.workloads.pixel_streaming.session.schedule import CapacitySchedule, Cron, scheduled_buffer

PARIS = ZoneInfo("Europe/Paris")


def random_cron(rng: random.Random) -> str:
    """Minute and hour fields of every form; day fields either `*` or restricted without covering every day
    (croniter counts a day field covering every value, such as 0-6, or `*/n`, as unrestricted; robfig/cron, KEDA's
    engine, which schedule.py follows, counts only `*`)."""

    def field(low: int, high: int, day: bool = False) -> str:
        kinds = ["*", "n", "range", "list", "range-step"] if day else ["*", "n", "range", "step", "list", "range-step"]
        kind = rng.choice(kinds)
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        if day and (a, b) == (low, high):
            b -= 1
        return {
            "*": "*",
            "n": str(a),
            "range": f"{a}-{b}",
            "step": f"*/{rng.randint(2, 7)}",
            "list": ",".join(str(v) for v in sorted(rng.sample(range(low, high + 1), 3))),
            "range-step": f"{a}-{b}/{rng.randint(2, 4)}",
        }[kind]

    return " ".join([field(0, 59), field(0, 23), field(1, 28, day=True), field(1, 12), field(0, 6, day=True)])


def test_robfig_crons_reading_where_it_differs_from_other_crons() -> None:
    """KEDA's engine, robfig/cron v3.0.1: a `*` item leaves a day field unrestricted even in a list, `*/2`
    restricts it; day of week stops at 6; a step needs a number."""
    assert Cron.parse("0 0 *,5 * 1").any_day and not Cron.parse("0 0 */2 * 1").any_day
    for text in ("0 0 * * 7", "0 0 5/ * *", "0 0 */ * *", "0 0 ٣ * *"):
        with pytest.raises(ValueError):
            Cron.parse(text)
    assert Cron.parse("5/20 * * * *").minutes == {5, 25, 45}


def test_an_hour_that_comes_twice_does_not_switch_a_schedule_off_and_on() -> None:
    """Paris, 25 October 2026: 02:00-03:00 local comes twice. A schedule from 02:30 to 06:00 starts at the first
    02:30 and stays active through the second."""
    schedule = CapacitySchedule("night", "30 2 * * *", "0 6 * * *", "Europe/Paris", 4)
    for moment in ("2026-10-25T00:30:00+00:00", "2026-10-25T01:00:00+00:00", "2026-10-25T01:45:00+00:00"):
        assert schedule.active(epoch(moment)), moment
    assert not schedule.active(epoch("2026-10-25T05:00:00+00:00"))


def test_a_cron_of_the_29th_of_february_ends_its_schedule() -> None:
    leap = CapacitySchedule("leap-day", "0 10 29 2 *", "0 20 29 2 *", "UTC", 3)
    assert leap.active(epoch("2028-02-29T12:00:00+00:00")) and not leap.active(epoch("2026-07-01T12:00:00+00:00"))


def test_the_last_fire_is_croniters_for_a_thousand_crons() -> None:
    """Our reading of five-field crons (schedule.py) against croniter's get_prev, in a zone with daylight saving,
    at random moments: the same minute every time (croniter's day-of-month OR day-of-week rule is cron's)."""
    rng = random.Random(23)
    for _ in range(1000):
        text = random_cron(rng)
        at = datetime(2026, 1, 1, tzinfo=PARIS) + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        ours = Cron.parse(text).last_fire(at)
        if ours is None:
            continue  # nothing within a year (a February 29): croniter would look further back
        theirs = croniter(text, at + timedelta(seconds=1)).get_prev(datetime)
        assert ours == theirs.timestamp(), f"{text} at {at}: {ours} against croniter's {theirs}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 18 * *", "has 4 fields"),
        ("60 18 * * *", "minute '60' is outside 0-59"),
        ("0 18 * * MON", "day of week 'MON' is not a number"),
        ("0 5-2 * * *", "hour '5-2' is outside 0-23 or runs backwards"),
        ("*/0 * * * *", "minute '*/0' is outside 0-59"),
    ],
)
def test_a_cron_that_is_not_one_says_which_field(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("*", r"\*")):
        Cron.parse(text)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_schedule_is_active_from_a_start_until_the_next_end_in_its_zone() -> None:
    # Fridays 22:00 to Saturdays 02:00, Paris time: across midnight.
    night = CapacitySchedule("friday-night", "0 22 * * 5", "0 2 * * 6", "Europe/Paris", 6)
    assert not night.active(epoch("2026-06-12T21:59:00+02:00"))
    assert night.active(epoch("2026-06-12T22:00:00+02:00"))
    assert night.active(epoch("2026-06-13T01:59:00+02:00"))
    assert not night.active(epoch("2026-06-13T02:00:00+02:00"))
    assert not night.active(epoch("2026-06-13T22:30:00+02:00")), "Saturday night: no start since the end"
    # Saturday night, when the clocks go back in Paris (Sunday 25 October 2026, 03:00 CEST -> 02:00 CET): the end
    # is 02:00 local time, the first one (CEST), an hour later by the clock of the night before.
    saturday = CapacitySchedule("saturday-night", "0 22 * * 6", "0 2 * * 0", "Europe/Paris", 6)
    assert saturday.active(epoch("2026-10-24T22:00:00+02:00")) and saturday.active(epoch("2026-10-25T01:30:00+02:00"))
    assert not saturday.active(epoch("2026-10-25T02:00:00+01:00"))
    # The same crons in UTC are two hours off in summer.
    utc = CapacitySchedule("friday-night", "0 22 * * 5", "0 2 * * 6", "UTC", 6)
    assert not utc.active(epoch("2026-06-12T22:30:00+02:00")) and utc.active(epoch("2026-06-13T00:30:00+02:00"))


def test_the_largest_active_buffer_counts() -> None:
    launch = CapacitySchedule("launch", "0 18 12 6 *", "0 22 12 6 *", "Europe/Paris", 8)
    evenings = CapacitySchedule("evenings", "0 19 * * *", "0 23 * * *", "Europe/Paris", 4)
    assert scheduled_buffer([launch, evenings], epoch("2026-06-12T17:00:00+02:00")) == 0
    assert scheduled_buffer([launch, evenings], epoch("2026-06-12T18:30:00+02:00")) == 8
    assert scheduled_buffer([launch, evenings], epoch("2026-06-12T22:30:00+02:00")) == 4
    assert scheduled_buffer([launch, evenings], epoch("2026-06-13T18:30:00+02:00")) == 0


LAUNCH = {
    "name": "launch",
    "start": "45 17 12 6 *",
    "end": "0 22 12 6 *",
    "timeZone": "Europe/Paris",
    "bufferStreams": 8,
}


def plan_error(tmp_path: Path, schedules: list[dict], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The offline plan of dev with these schedules: its exit status must be 2; the lines it printed on stderr."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"].setdefault("pixelstream:streaming", {})["capacity"] = {"schedules": schedules}
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(document))
    argv = ["--stack", "bad", "--stack-file", str(stack), "--project-dir", str(ROOT), "--out", str(tmp_path)]
    assert plan_main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"start": "45 17 12 6"}, "start", "has 4 fields"),
        ({"end": "0 22 30 2 *"}, "end", "names no day that exists"),
        ({"timeZone": "Paris"}, "timeZone", "'Paris' is not a time zone"),
        ({"name": "Launch Day"}, "name", "is not a new name"),
        ({"bufferStreams": -1}, "bufferStreams", "-1 is outside 0-"),
        ({"end": "45 17 12 6 *"}, "end", "fires with start: the schedule would never be active"),
    ],
)
def test_a_bad_schedule_is_one_line_naming_its_key(
    tmp_path: Path, change: dict, key: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    [line] = plan_error(tmp_path, [{**LAUNCH, **change}], capsys)
    assert line.startswith(f"error: pixelstream:streaming.capacity.schedules[0].{key}: ") and problem in line


def test_two_schedules_of_one_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [line] = plan_error(tmp_path, [LAUNCH, LAUNCH], capsys)
    assert "schedules[1].name: 'launch' is not a new name" in line


def test_the_schedules_reach_the_session_service_in_its_builds_document(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"capacity": {"schedules": [LAUNCH]}})
    assert builds_document(plan)["schedules"] == [LAUNCH]


def test_the_session_service_raises_the_buffer_while_a_schedule_is_active() -> None:
    cluster = FakeCluster(nodes=("node-a",), replicas=1)
    cluster.pods = [FakePod("a1", "node-a", 1, 0)]
    clock = [epoch("2026-06-12T17:40:00+02:00")]
    svc = service(cluster, buffer=1, clock=clock)
    svc.schedules = [CapacitySchedule(**{**_schedule_args(LAUNCH)})]
    round_of(svc)
    assert cluster.replicas == 1, "before the launch: the buffer of one"
    clock[0] = epoch("2026-06-12T17:45:00+02:00")
    round_of(svc)
    assert cluster.replicas == 8 and svc.scheduled == 8
    clock[0] = epoch("2026-06-12T22:00:00+02:00")
    round_of(svc)
    asyncio.run(svc._refresh_streams())
    assert cluster.replicas < 8, "after it, back down (the fake ReplicaSet never created the pods: none to keep)"


def _schedule_args(entry: dict) -> dict:
    return {
        "name": entry["name"],
        "start": entry["start"],
        "end": entry["end"],
        "time_zone": entry["timeZone"],
        "buffer": entry["bufferStreams"],
    }


@pytest.mark.slow
def test_a_launch_scheduled_half_an_hour_serves_the_launch_burst_without_a_wait(tmp_path: Path) -> None:
    """Prod with a schedule of six started streams for the launch's first half hour (from its second 0, the
    default start of the trace's clock): over seeds 0-9 nobody is lost, p95 is within a minute, and it costs
    within 10% of the reference's always-on node (docs/capacity.md, "Scheduled capacity")."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    launch = {"name": "launch", "start": "0 0 5 1 *", "end": "30 0 5 1 *", "timeZone": "UTC", "bufferStreams": 6}
    document["config"]["pixelstream:streaming"].setdefault("capacity", {})["schedules"] = [launch]
    stack_file = tmp_path / "Pulumi.launch.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    trace, timings = load_trace("launch-burst"), Timings()

    def mean(path: Path) -> dict:
        stack = load_stack(path)
        price = node_hourly_usd(stack.pool.shape)
        runs = [
            summarize(stack, trace.name, simulate(stack, trace, timings, seed), timings, seed, price)
            for seed in range(10)
        ]
        return over_seeds(runs)

    ours, theirs, without = mean(stack_file), mean(REFERENCE_STACK), mean(ROOT / "stacks" / "Pulumi.prod.yaml")
    assert ours["unservedPlayers"] == 0 and ours["p95WaitSeconds"] <= 60
    assert ours["cost"] <= 1.1 * theirs["cost"]
    assert without["unservedPlayers"] > 0, "without the schedule the burst loses players"
    assert json.dumps(ours["spread"]) != json.dumps(without["spread"])
