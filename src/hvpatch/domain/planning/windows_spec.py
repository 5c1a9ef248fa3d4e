"""The maintenance-window spec of the plan policy YAML, validated into window values.

Every problem is collected with its location (``windows[2].weekly.start``) so a user fixes a
policy file in one go; see :mod:`.windows` for what the windows mean.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hvpatch.domain.planning.windows import (
    WEEKDAYS,
    Blackout,
    MaintenanceWindow,
    Monthly,
    Recurrence,
    Weekly,
)
from hvpatch.errors import InputError, Problem

__all__ = ["parse_blackouts", "parse_windows", "windows_from_list"]

_WINDOW_KEYS = frozenset({"name", "cluster", "tenant", "timezone", "weekly", "monthly",
                          "blackout"})
_DAY_NAMES = {name: i for i, name in enumerate(WEEKDAYS)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                      "saturday", "sunday"))}


def _zone(value: Any, loc: str, problems: list[Problem]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(loc, f"expected an IANA time zone like Europe/Berlin, got "
                                f"{value!r}"))
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(loc, f"unknown time zone {value!r} (expected an IANA name "
                                f"like Europe/Berlin or UTC)"))
        return "UTC"
    return value


def _clock(value: Any, loc: str, problems: list[Problem]) -> time:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    hint = " (write it quoted: YAML reads an unquoted 22:00 as a number)" \
        if isinstance(value, int) else ""
    problems.append(Problem(loc, f"expected a time like \"22:00\", got {value!r}{hint}"))
    return time(0)


def _number(value: Any, loc: str, problems: list[Problem], lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value <= hi:
        problems.append(Problem(loc, f"expected a number of hours above {lo:g} and at most "
                                f"{hi:g}, got {value!r}"))
        return 1.0
    return float(value)


def _weekday(value: Any, loc: str, problems: list[Problem]) -> int:
    day = _DAY_NAMES.get(value.strip().lower()) if isinstance(value, str) else None
    if day is None:
        problems.append(Problem(loc, f"expected a weekday ({', '.join(WEEKDAYS)}), got "
                                f"{value!r}"))
        return 0
    return day


def _mapping(value: Any, loc: str, keys: set[str], problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.append(Problem(loc, f"expected a mapping with {', '.join(sorted(keys))}"))
        return {}
    for key in sorted(set(value) - keys, key=str):
        problems.append(Problem(f"{loc}.{key}", f"unknown field (expected one of "
                                f"{', '.join(sorted(keys))})"))
    return value


def _recurrence(entry: dict[str, Any], loc: str, problems: list[Problem]) -> Recurrence | None:
    if "weekly" in entry:
        spec = _mapping(entry["weekly"], f"{loc}.weekly", {"days", "start", "hours"}, problems)
        days = spec.get("days")
        if not isinstance(days, list) or not days:
            problems.append(Problem(f"{loc}.weekly.days", "expected a list of weekdays like "
                                    "[sat, sun]"))
            days = []
        numbers = sorted({_weekday(d, f"{loc}.weekly.days", problems) for d in days})
        return Weekly(tuple(numbers), _clock(spec.get("start"), f"{loc}.weekly.start", problems),
                      _number(spec.get("hours"), f"{loc}.weekly.hours", problems, 0, 168))
    spec = _mapping(entry["monthly"], f"{loc}.monthly",
                    {"weekday", "nth", "offset_days", "start", "hours"}, problems)
    nth, offset = spec.get("nth", 1), spec.get("offset_days", 0)
    if isinstance(nth, bool) or nth not in (-1, 1, 2, 3, 4, 5):
        problems.append(Problem(f"{loc}.monthly.nth", f"expected 1 to 5, or -1 for the last, "
                                f"got {nth!r}"))
        nth = 1
    if isinstance(offset, bool) or not isinstance(offset, int) or not -27 <= offset <= 27:
        problems.append(Problem(f"{loc}.monthly.offset_days", f"expected whole days between "
                                f"-27 and 27, got {offset!r}"))
        offset = 0
    return Monthly(_weekday(spec.get("weekday"), f"{loc}.monthly.weekday", problems), nth,
                   _clock(spec.get("start"), f"{loc}.monthly.start", problems),
                   _number(spec.get("hours"), f"{loc}.monthly.hours", problems, 0, 24 * 28),
                   offset)


def _date(value: Any, loc: str, problems: list[Problem]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(Problem(loc, f"expected a date like 2026-12-20, got {value!r}"))
    return None


def parse_blackouts(data: Any, where: str, problems: list[Problem], *, cluster: str = "",
                    tenant: str = "", timezone: str = "") -> list[Blackout]:
    """``[{from, to, reason?}, ...]`` as blackouts; every problem is appended to ``problems``."""
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append(Problem(where, "expected a list of {from: DATE, to: DATE}"))
        return []
    out = []
    for i, item in enumerate(data):
        loc = f"{where}[{i}]"
        spec = _mapping(item, loc, {"from", "to", "reason"}, problems)
        if not spec:
            continue
        start = _date(spec.get("from"), f"{loc}.from", problems)
        end = _date(spec.get("to", spec.get("from")), f"{loc}.to", problems)
        reason = spec.get("reason", "")
        if not isinstance(reason, str):
            problems.append(Problem(f"{loc}.reason", "expected text"))
            reason = ""
        if start is None or end is None:
            continue
        if end < start:
            problems.append(Problem(loc, f"'to' ({end}) is before 'from' ({start})"))
            continue
        out.append(Blackout(start, end, reason, cluster, tenant, timezone))
    return out


def parse_windows(data: Any, where: str, problems: list[Problem],
                  ) -> tuple[list[MaintenanceWindow], list[Blackout]]:
    """The ``windows`` list of a plan policy: windows, and blackout-only entries as blackouts.

    Each entry: ``cluster`` or ``tenant`` (or neither: a default window), ``timezone``,
    exactly one of ``weekly``/``monthly`` (or none, with ``blackout``), optional ``name`` and
    ``blackout``. Every problem is appended to ``problems`` with its location.
    """
    if data is None:
        return [], []
    if not isinstance(data, list):
        problems.append(Problem(where, "expected a list of windows"))
        return [], []
    windows: list[MaintenanceWindow] = []
    blackouts: list[Blackout] = []
    for i, item in enumerate(data):
        loc = f"{where}[{i}]"
        entry = _mapping(item, loc, set(_WINDOW_KEYS), problems)
        if not entry:
            continue
        scope = {k: entry.get(k, "") for k in ("cluster", "tenant", "name")}
        for key, value in scope.items():
            if not isinstance(value, str):
                problems.append(Problem(f"{loc}.{key}", f"expected text, got {value!r}"))
                scope[key] = ""
        if scope["cluster"] and scope["tenant"]:
            problems.append(Problem(loc, "give either cluster or tenant, not both"))
        zone = _zone(entry.get("timezone", "UTC"), f"{loc}.timezone", problems)
        kinds = [k for k in ("weekly", "monthly") if k in entry]
        cuts = parse_blackouts(entry.get("blackout"), f"{loc}.blackout", problems)
        if len(kinds) > 1:
            problems.append(Problem(loc, "give either weekly or monthly, not both"))
        elif not kinds:
            if not cuts:
                problems.append(Problem(loc, "expected weekly, monthly or blackout"))
            blackouts.extend(Blackout(b.start, b.end, b.reason, scope["cluster"],
                                      scope["tenant"], zone) for b in cuts)
            continue
        recurrence = _recurrence(entry, loc, problems)
        if recurrence is not None:
            windows.append(MaintenanceWindow(recurrence, zone, scope["cluster"],
                                             scope["tenant"], tuple(cuts), scope["name"]))
    return windows, blackouts


def windows_from_list(data: Any, where: str = "windows",
                      ) -> tuple[tuple[MaintenanceWindow, ...], tuple[Blackout, ...]]:
    """Validate a ``windows`` list; raise :class:`InputError` naming every bad field."""
    problems: list[Problem] = []
    windows, blackouts = parse_windows(data, where, problems)
    if problems:
        raise InputError(f"{where} has {len(problems)} problem(s)", problems)
    return tuple(windows), tuple(blackouts)
