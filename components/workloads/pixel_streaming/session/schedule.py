"""Scheduled capacity: a larger buffer of started streams between two times, for a launch or a demo day.

A schedule is active from a fire of its `start` cron until the next fire of its `end` cron, in its time zone:
KEDA's cron scaler's rule (active while the last start is later than the last end). Crons have the five standard
fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-6 with 0 Sunday), each `*`, a number,
a range `a-b`, a step `*/n`, `a/n` or `a-b/n`, or a comma list of those, read as robfig/cron v3.0.1 (KEDA's engine)
reads them (parser.go getRange, spec.go dayMatches): when both day fields are restricted (neither holds a `*` item;
`*/2` restricts), a day matching either one fires. No names (MON, JAN) and no @-macros. Times compare as instants:
across a daylight-saving change a local time that comes twice fires at its first occurrence.

Pure: the plan validates with it, the session service runs it, the simulator replays it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# (name, lowest, highest) of the five fields, in order.
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
# What a stack may list (config.py) and the session service reads.
MAX_SCHEDULES = 16
SCHEDULE_NAME = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
# How far back a cron's last fire is looked for: a cron of 29 February fires within it.
LOOK_BACK_DAYS = 4 * 366


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = _number(first_text, name), _number(last_text, name)
        else:
            first = last = _number(span, name)
            if step_text:
                last = high  # `a/n`: from a to the field's end, as cron reads it
        step = _number(step_text, name) if "/" in part else 1
        if not (low <= first <= last <= high) or step < 1:
            raise ValueError(f"{name} {part!r} is outside {low}-{high} or runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        raise ValueError(f"{name} {text!r} is not a number (names such as MON or JAN are not supported)")
    return int(text)


def _unrestricted(text: str) -> bool:
    """A `*` item (or `*/1`) leaves a day field unrestricted for the OR rule: robfig/cron v3.0.1 sets its starBit
    for `*` and clears it for a step above 1 (parser.go getRange), and ORs the items' bits (getField)."""
    return any(item in ("*", "*/1") for item in text.split(","))


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0-6, Monday 0 (as Python counts); cron's Sunday (0) is 6."""
    any_day: bool
    any_weekday: bool
    times: tuple[time, ...]
    """Its times of day, latest first."""

    @classmethod
    def parse(cls, text: str) -> Cron:
        """ValueError names the field and what is wrong."""
        parts = text.split()
        if len(parts) != len(FIELDS):
            fields = "minute hour day-of-month month day-of-week"
            raise ValueError(f"{text!r} has {len(parts)} fields; a cron has 5: {fields}")
        minutes, hours, days, months, cron_weekdays = (
            _field(part, *field) for part, field in zip(parts, FIELDS, strict=True)
        )
        weekdays = frozenset((day - 1) % 7 for day in cron_weekdays)  # cron: Sunday 0, Monday 1
        times = tuple(sorted((time(h, m) for h in hours for m in minutes), reverse=True))
        return cls(minutes, hours, days, months, weekdays, _unrestricted(parts[2]), _unrestricted(parts[4]), times)

    def fires_at_all(self) -> bool:
        """Whether some day of a leap year matches (0 0 30 2 * never does)."""
        first = date(2028, 1, 1)
        return any(self.fires_on(first + timedelta(days=n)) for n in range(366))

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def last_fire(self, at: datetime) -> float | None:
        """The latest fire at or before `at` (aware: the cron runs in its time zone), in seconds since the epoch,
        within LOOK_BACK_DAYS. Compared as instants: a wall-clock comparison would let an hour that comes twice
        fire twice."""
        limit = at.timestamp()
        for back in range(LOOK_BACK_DAYS + 1):
            day = at.date() - timedelta(days=back)
            if not self.fires_on(day):
                continue
            for moment in self.times:
                fire = datetime.combine(day, moment, tzinfo=at.tzinfo).timestamp()
                if fire <= limit:
                    return fire
        return None


@dataclass(frozen=True)
class CapacitySchedule:
    """As the stack and the builds document give it; parsed on creation (ValueError names the part that is wrong:
    start, end or timeZone, and why)."""

    name: str
    start: str
    end: str
    time_zone: str
    buffer: int
    """Started streams each build taking new players keeps at least, while active."""
    _crons: tuple[Cron, Cron] = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timeZone: {self.time_zone!r} is not a time zone such as Europe/Paris or UTC") from None
        crons = []
        for key, text in (("start", self.start), ("end", self.end)):
            try:
                cron = Cron.parse(text)
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
            if not cron.fires_at_all():
                raise ValueError(f"{key}: {text!r} names no day that exists")
            crons.append(cron)
        if crons[0] == crons[1]:
            raise ValueError(f"end: {self.end!r} fires with start: the schedule would never be active")
        object.__setattr__(self, "_crons", (crons[0], crons[1]))
        object.__setattr__(self, "_zone", zone)

    def document(self) -> dict[str, str | int]:
        """Its entry in the builds document (sessions.py builds_document)."""
        return {
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "timeZone": self.time_zone,
            "bufferStreams": self.buffer,
        }

    def active(self, now: float) -> bool:
        """Whether `now` (seconds since the epoch) is after a start and before the end that follows it."""
        local = datetime.fromtimestamp(now, self._zone)
        started = self._crons[0].last_fire(local)
        ended = self._crons[1].last_fire(local)
        return started is not None and (ended is None or started > ended)


def scheduled_buffer(schedules: Sequence[CapacitySchedule], now: float) -> int:
    """The largest buffer of the schedules active at `now`; 0 when none is."""
    return max((s.buffer for s in schedules if s.active(now)), default=0)
