"""Standard 5-field cron expressions (minute hour day-of-month month day-of-week), in UTC.

Lists, ranges, steps, month and weekday names, 7 = Sunday, the @hourly/@daily/@weekly/@monthly/
@yearly macros, and cron's rule that a day matches if EITHER day field matches when both are
restricted. Pure: the caller passes the times; nothing reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# Longest gap between two fire times of a valid expression: "0 0 29 2 1" (Feb 29 on a Monday,
# or any Feb 29 or Monday under the OR rule) is short; a pure Feb 29 is 8 years apart at most.
_SEARCH_DAYS = 366 * 9
_PART = re.compile(r"^(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _WEEKDAYS),
)


def _value(text: str, field: _Field) -> int:
    key = text.lower()
    if key in field.names:
        return field.names[key]
    if not text.isdigit():
        raise ValueError(f"{field.name}: {text!r} is not a number or name")
    value = int(text)
    if not field.low <= value <= field.high:
        raise ValueError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        m = _PART.match(part)
        if not m:
            raise ValueError(f"{field.name}: cannot parse {part!r}")
        star, first, last, step_text = m.group(1) == "*", m.group(2), m.group(3), m.group(4)
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"{field.name}: step must be at least 1")
        if star:
            low, high = field.low, field.high
        else:
            low = _value(first, field)
            # "5/15" means 5-max/15, as in Vixie cron.
            high = _value(last, field) if last else (field.high if step_text else low)
        if low > high:
            raise ValueError(f"{field.name}: range {low}-{high} is backwards")
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def matches(self, when: datetime) -> bool:
        when = _utc(when)
        return when.minute in self.minutes and when.hour in self.hours and self.day_matches(when.date())

    def last_at_or_before(self, when: datetime) -> datetime | None:
        """The latest fire time <= `when` (within the search horizon), or None."""
        when = _utc(when)
        day = when.date()
        limit = (when.hour, when.minute)
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                best = max(
                    ((h, m) for h in self.hours for m in self.minutes if (h, m) <= limit), default=None
                )
                if best is not None:
                    return datetime.combine(day, time(best[0], best[1]), tzinfo=UTC)
            day -= timedelta(days=1)
            limit = (23, 59)
        return None

    def next_after(self, when: datetime) -> datetime | None:
        """The first fire time > `when` (within the search horizon), or None."""
        when = _utc(when).replace(second=0, microsecond=0)
        day = when.date()
        floor: tuple[int, int] | None = (when.hour, when.minute)
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                best = min(
                    ((h, m) for h in self.hours for m in self.minutes if floor is None or (h, m) > floor),
                    default=None,
                )
                if best is not None:
                    return datetime.combine(day, time(best[0], best[1]), tzinfo=UTC)
            day += timedelta(days=1)
            floor = None
        return None

    def last_between(self, after: datetime, until: datetime) -> datetime | None:
        """The latest fire time in (after, until]: a slot missed while busy still fires, once."""
        slot = self.last_at_or_before(until)
        return slot if slot is not None and slot > _utc(after) else None


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse(expression: str) -> CronSchedule:
    """Parse a cron expression; ValueError names the field that is wrong."""
    text = MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expression!r}: expected 5 fields, got {len(parts)}")
    minute, hour, dom, month, dow = (_parse_field(p, f) for p, f in zip(parts, _FIELDS, strict=True))
    return CronSchedule(
        expression=expression,
        minutes=tuple(sorted(minute)),
        hours=tuple(sorted(hour)),
        days=dom,
        months=month,
        weekdays=frozenset(d % 7 for d in dow),
        day_restricted=not parts[2].startswith("*"),
        weekday_restricted=not parts[4].startswith("*"),
    )
