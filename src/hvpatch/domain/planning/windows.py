"""Maintenance windows: when a wave may run, per cluster or tenant, in the window's own time zone.

A :class:`MaintenanceWindow` recurs weekly (days + start time + duration) or monthly (the n-th
weekday of the month plus an offset in days, like "Patch Tuesday + 4 days"), in an IANA time zone.
:class:`Blackout` date ranges (change freezes) are cut out of every window they touch.

Rules, in the words the user sees:

* A wave must fit inside one free stretch of time: it may start late in an occurrence only if it
  still ends before the occurrence does. Occurrences that touch or overlap join into one stretch.
* The start time is wall-clock time in the window's zone; the duration is elapsed time. On the
  night clocks go forward, a start time that does not exist (02:30 in Europe/Berlin on the last
  Sunday of March) is shifted forward by the gap (03:30 CEST, the same instant as 01:30 UTC).
  On the night clocks go back, an ambiguous start time means its first occurrence.
* Blackout dates are whole local days, ``from`` and ``to`` included, in the blackout's own
  zone, else the zone of the window it cuts (UTC when no window applies).
* Which windows apply to a wave: the windows naming its cluster, or else the windows naming
  neither a cluster nor a tenant (the defaults); *and* for every tenant with a guest on a host of
  the wave, that tenant's windows if it has any. No window at all means any time (blackouts
  still apply).

Pure: no clock. ``after`` is always a parameter and must be time-zone aware.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_HORIZON",
    "Blackout",
    "MaintenanceWindow",
    "Monthly",
    "Slot",
    "SlotSearch",
    "Weekly",
    "find_slot",
    "fits",
    "free_intervals",
    "next_window_start",
]

#: How far ahead a search for a window looks before giving up.
DEFAULT_HORIZON = timedelta(days=400)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every given weekday (0 = Monday) at ``start`` local time, for ``hours``."""

    days: tuple[int, ...]
    start: time
    hours: float

    def describe(self) -> str:
        """E.g. ``weekly sat,sun 22:00 for 6 h``."""
        names = ",".join(WEEKDAYS[d] for d in self.days)
        return f"weekly {names} {self.start:%H:%M} for {self.hours:g} h"


@dataclass(frozen=True, slots=True)
class Monthly:
    """The ``nth`` ``weekday`` of each month (``nth`` -1 = the last), plus ``offset_days``."""

    weekday: int
    nth: int
    start: time
    hours: float
    offset_days: int = 0

    def describe(self) -> str:
        """E.g. ``monthly 2nd tue +4 days 20:00 for 8 h``."""
        nth = "last" if self.nth == -1 else f"{self.nth}{_ordinal(self.nth)}"
        offset = f" {self.offset_days:+d} days" if self.offset_days else ""
        return f"monthly {nth} {WEEKDAYS[self.weekday]}{offset} {self.start:%H:%M} " \
               f"for {self.hours:g} h"

    def day_in(self, year: int, month: int) -> date | None:
        """The day of the occurrence in that month (offset applied), or None if none exists."""
        first = date(year, month, 1)
        shift = (self.weekday - first.weekday()) % 7
        if self.nth == -1:
            nxt = date(year + month // 12, month % 12 + 1, 1)
            last = nxt - timedelta(days=1)
            day = last - timedelta(days=(last.weekday() - self.weekday) % 7)
        else:
            day = first + timedelta(days=shift + 7 * (self.nth - 1))
            if day.month != month:
                return None
        return day + timedelta(days=self.offset_days)


def _ordinal(n: int) -> str:
    return {1: "st", 2: "nd", 3: "rd"}.get(n, "th")


Recurrence = Weekly | Monthly


@dataclass(frozen=True, slots=True)
class Blackout:
    """Local days ``start`` to ``end`` (both included) on which nothing may run.

    ``cluster``/``tenant`` narrow it to one cluster or the hosts of one tenant's guests;
    ``timezone`` empty means the zone of the window it cuts.
    """

    start: date
    end: date
    reason: str = ""
    cluster: str = ""
    tenant: str = ""
    timezone: str = ""

    def applies(self, cluster: str, tenants: Iterable[str]) -> bool:
        """Whether this blackout concerns a wave in ``cluster`` touching ``tenants``."""
        if self.cluster:
            return self.cluster == cluster
        if self.tenant:
            return self.tenant in set(tenants)
        return True

    def interval(self, zone: str) -> Interval:
        """The blackout as a UTC interval, its days read in ``self.timezone`` or ``zone``."""
        tz = ZoneInfo(self.timezone or zone or "UTC")
        begin = datetime.combine(self.start, time(0), tzinfo=tz).astimezone(UTC)
        stop = datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=tz)
        return begin, stop.astimezone(UTC)

    def describe(self) -> str:
        """E.g. ``blackout 2026-12-20..2027-01-05 (change freeze)``."""
        why = f" ({self.reason})" if self.reason else ""
        return f"blackout {self.start}..{self.end}{why}"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A recurring window in an IANA time zone, for one cluster, one tenant, or everything."""

    recurrence: Recurrence
    timezone: str = "UTC"
    cluster: str = ""
    tenant: str = ""
    blackouts: tuple[Blackout, ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        """The name given, or a description such as ``fra1-esx-01: weekly sat,sun 22:00 ...``."""
        if self.name:
            return self.name
        scope = self.cluster or (f"tenant {self.tenant}" if self.tenant else "default")
        return f"{scope}: {self.recurrence.describe()} {self.timezone}"

    @property
    def seconds(self) -> float:
        """Length of one occurrence."""
        return self.recurrence.hours * 3600.0

    def occurrences(self, begin: datetime, end: datetime) -> Iterator[Interval]:
        """UTC intervals of the occurrences that overlap ``[begin, end)``, in order."""
        tz = ZoneInfo(self.timezone)
        length = timedelta(seconds=self.seconds)
        rec = self.recurrence
        first = (begin - length).astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        days: Iterable[date]
        if isinstance(rec, Weekly):
            days = (first + timedelta(days=i) for i in range((last - first).days + 1))
            days = (d for d in days if d.weekday() in rec.days)
        else:
            days = _monthly_days(rec, first - timedelta(days=40), last + timedelta(days=40))
        for day in days:
            start = datetime.combine(day, rec.start, tzinfo=tz).astimezone(UTC)
            stop = start + length
            if stop > begin and start < end:
                yield start, stop

    def free(self, begin: datetime, end: datetime,
             extra: Sequence[Blackout] = ()) -> list[Interval]:
        """Occurrences overlapping ``[begin, end)`` minus its own and ``extra`` blackouts."""
        cuts = [b.interval(self.timezone) for b in (*self.blackouts, *extra)]
        return _subtract(list(self.occurrences(begin, end)), cuts)


def _monthly_days(rec: Monthly, first: date, last: date) -> Iterator[date]:
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        day = rec.day_in(year, month)
        if day is not None and first <= day <= last:
            yield day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a wave goes: its start, the end of the free stretch it sits in, and the window."""

    start: datetime
    end: datetime
    window: str


@dataclass(frozen=True, slots=True)
class SlotSearch:
    """The outcome of looking for a slot: the slot, or None and why not."""

    slot: Slot | None
    reason: str = ""


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, stop in sorted(intervals):
        if stop <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _subtract(intervals: list[Interval], cuts: list[Interval]) -> list[Interval]:
    result = _merge(intervals)
    for c0, c1 in _merge(cuts):
        nxt: list[Interval] = []
        for s, e in result:
            if e <= c0 or s >= c1:
                nxt.append((s, e))
                continue
            if s < c0:
                nxt.append((s, c0))
            if e > c1:
                nxt.append((c1, e))
        result = nxt
    return result


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, stop = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < stop:
            out.append((start, stop))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _groups(windows: Sequence[MaintenanceWindow], cluster: str,
            tenants: Iterable[str]) -> list[list[MaintenanceWindow]]:
    """The window sets that must all allow a wave (see the module docstring)."""
    own = [w for w in windows if w.cluster and w.cluster == cluster]
    default = [w for w in windows if not w.cluster and not w.tenant]
    groups = [own or default] if (own or default) else []
    for tenant in sorted(set(tenants)):
        mine = [w for w in windows if w.tenant == tenant]
        if mine:
            groups.append(mine)
    return groups


def free_intervals(windows: Sequence[MaintenanceWindow], begin: datetime, end: datetime, *,
                   cluster: str = "", tenants: Iterable[str] = (),
                   blackouts: Sequence[Blackout] = ()) -> list[tuple[Interval, str]]:
    """Free stretches (UTC) overlapping ``[begin, end)`` for a wave, each with a window label.

    ``cluster=""`` and no tenants with every window a default one means: the union of
    ``windows``. ``blackouts`` are extra (policy-wide) blackouts, filtered by scope here.
    """
    _aware(begin)
    tenant_set = frozenset(tenants)
    extra = [b for b in blackouts if b.applies(cluster, tenant_set)]
    groups = _groups(windows, cluster, tenant_set) if cluster or tenant_set else (
        [list(windows)] if windows else [])
    if not groups:
        return [(iv, "any time") for iv in _subtract([(begin, end)],
                                                     [b.interval("UTC") for b in extra])]
    labelled: list[tuple[Interval, str]] = []
    combined: list[Interval] | None = None
    for group in groups:
        parts = [(iv, w.label) for w in group for iv in w.free(begin, end, extra)]
        labelled.extend(parts)
        union = _merge(iv for iv, _ in parts)
        combined = union if combined is None else _intersect(combined, union)
    out = []
    for iv in combined or []:
        label = next((name for (s, e), name in sorted(labelled) if s <= iv[0] < e), "")
        out.append((iv, label))
    return out


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; planning needs aware times")


def find_slot(windows: Sequence[MaintenanceWindow], after: datetime, duration_s: float, *,
              cluster: str = "", tenants: Iterable[str] = (),
              blackouts: Sequence[Blackout] = (),
              horizon: timedelta = DEFAULT_HORIZON) -> SlotSearch:
    """The earliest start at or after ``after`` where ``duration_s`` fits in one free stretch.

    Looks no further than ``horizon`` for the start; when nothing fits, the slot is None and
    ``reason`` says why (longer than any window, or every occurrence taken by blackouts).
    """
    _aware(after)
    tenant_set = frozenset(tenants)
    need = timedelta(seconds=max(0.0, duration_s))
    span = min(horizon, timedelta(days=16))  # look near first, then further (4x each time)
    while True:
        reach = after + span
        stretches = free_intervals(windows, after, reach + need + timedelta(days=1),
                                   cluster=cluster, tenants=tenant_set, blackouts=blackouts)
        best = timedelta(0)
        for (start, stop), label in stretches:
            begin = max(start, after)
            if begin > reach:
                break
            best = max(best, stop - begin)
            if stop - begin >= need:
                return SlotSearch(Slot(begin.astimezone(after.tzinfo),
                                       stop.astimezone(after.tzinfo), label))
        if span >= horizon:
            break
        span = min(horizon, span * 4)
    hours = duration_s / 3600.0
    where = f" for cluster {cluster}" if cluster else ""
    within = f"within {horizon.days} days after {after.isoformat(timespec='minutes')}"
    applicable = [w for g in _groups(windows, cluster, tenant_set) for w in g] \
        if cluster or tenant_set else list(windows)
    longest = max((w.seconds for w in applicable), default=0.0)
    if applicable and 0 < longest < duration_s:
        reason = (f"a wave of {hours:.1f} h is longer than the longest maintenance window "
                  f"({longest / 3600.0:g} h){where}: split the wave or lengthen a window")
    elif best == timedelta(0):
        reason = f"no free maintenance window{where} {within} (all blocked by blackouts or none)"
    else:
        reason = (f"no free stretch of {hours:.1f} h{where} {within}; the longest is "
                  f"{best.total_seconds() / 3600.0:.1f} h (blackouts or tenant windows cut it)")
    return SlotSearch(None, reason)


def next_window_start(windows: Sequence[MaintenanceWindow], after: datetime, duration_s: float,
                      *, cluster: str = "", tenants: Iterable[str] = (),
                      blackouts: Sequence[Blackout] = (),
                      horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
    """When a wave of ``duration_s`` may start at the earliest, or None (see :func:`find_slot`)."""
    found = find_slot(windows, after, duration_s, cluster=cluster, tenants=tenants,
                      blackouts=blackouts, horizon=horizon)
    return None if found.slot is None else found.slot.start


def fits(windows: Sequence[MaintenanceWindow], start: datetime, duration_s: float, *,
         cluster: str = "", tenants: Iterable[str] = (),
         blackouts: Sequence[Blackout] = ()) -> bool:
    """Whether ``[start, start + duration_s]`` lies inside one free stretch."""
    _aware(start)
    stop = start + timedelta(seconds=max(0.0, duration_s))
    stretches = free_intervals(windows, start - timedelta(seconds=1), stop + timedelta(seconds=1),
                               cluster=cluster, tenants=tenants, blackouts=blackouts)
    return any(s <= start and stop <= e for (s, e), _ in stretches)
