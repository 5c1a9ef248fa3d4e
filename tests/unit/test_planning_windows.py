"""Maintenance windows: weekly and monthly recurrences in IANA zones, DST, blackouts, tenants.

Expected instants are written in UTC next to the local wall-clock time they stand for, so each
case can be checked against a calendar. 2026 dates: DST in Europe starts Sun 29 March (02:00 CET
-> 03:00 CEST) and ends Sun 25 October (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvpatch.domain.planning.windows import (
    Blackout,
    MaintenanceWindow,
    Monthly,
    Weekly,
    find_slot,
    fits,
    next_window_start,
)
from hvpatch.domain.planning.windows_spec import windows_from_list
from hvpatch.errors import InputError

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
SAT, SUN, TUE = 5, 6, 1


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def weekend(hours: float = 6, **kw: object) -> MaintenanceWindow:
    """Sat+Sun 22:00 Europe/Berlin for ``hours``."""
    return MaintenanceWindow(Weekly((SAT, SUN), time(22, 0), hours), "Europe/Berlin", **kw)  # type: ignore[arg-type]


# --- weekly windows ------------------------------------------------------------------------


def test_weekly_window_next_start_is_saturday_evening_local_time() -> None:
    # Wed 4 March 2026 -> Sat 7 March 22:00 CET = 21:00 UTC
    start = next_window_start([weekend()], utc(2026, 3, 4, 10), 2 * HOUR)
    assert start == utc(2026, 3, 7, 21)
    assert start is not None and start.astimezone(BERLIN).time() == time(22, 0)


def test_a_wave_may_start_inside_an_open_window_only_if_it_still_fits() -> None:
    after = utc(2026, 3, 7, 23)  # Sat 00:00 local, 2 h into the 6 h window
    assert next_window_start([weekend()], after, 3 * HOUR) == after
    # 5 h no longer fit before 04:00 local: next occurrence, Sunday 22:00 CET
    assert next_window_start([weekend()], after, 5 * HOUR) == utc(2026, 3, 8, 21)


def test_wave_longer_than_every_window_finds_none_and_says_why() -> None:
    found = find_slot([weekend(6)], utc(2026, 3, 4), 7 * HOUR)
    assert found.slot is None
    assert "longer than the longest maintenance window (6 h)" in found.reason


def test_no_windows_means_any_time() -> None:
    after = utc(2026, 3, 4, 10, 17)
    assert next_window_start([], after, 30 * HOUR) == after


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        next_window_start([weekend()], datetime(2026, 3, 4), HOUR)


# --- daylight saving time ------------------------------------------------------------------


def test_wall_clock_start_is_kept_across_the_spring_change() -> None:
    # Sat 28 March 22:00 CET = 21:00 UTC; a week later 22:00 CEST = 20:00 UTC
    w = [MaintenanceWindow(Weekly((SAT,), time(22, 0), 4), "Europe/Berlin")]
    first = next_window_start(w, utc(2026, 3, 27), HOUR)
    second = next_window_start(w, utc(2026, 3, 29, 12), HOUR)
    assert first == utc(2026, 3, 28, 21)
    assert second == utc(2026, 4, 4, 20)


def test_start_time_in_the_spring_gap_is_shifted_forward() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin: the window opens at 03:30 CEST (01:30 UTC)
    w = [MaintenanceWindow(Weekly((SUN,), time(2, 30), 3), "Europe/Berlin")]
    start = next_window_start(w, utc(2026, 3, 28, 12), HOUR)
    assert start == utc(2026, 3, 29, 1, 30)
    assert start is not None and start.astimezone(BERLIN).time() == time(3, 30)


def test_ambiguous_autumn_start_is_the_first_occurrence_and_duration_is_elapsed_time() -> None:
    # 02:30 happens twice on 25 October 2026: the first (CEST, 00:30 UTC) is taken
    w = [MaintenanceWindow(Weekly((SUN,), time(2, 30), 3), "Europe/Berlin")]
    assert next_window_start(w, utc(2026, 10, 24, 12), HOUR) == utc(2026, 10, 25, 0, 30)
    # Sat 24 Oct 22:00 CEST + 6 h elapsed ends at 03:00 CET local (an hour was repeated)
    found = find_slot([MaintenanceWindow(Weekly((SAT,), time(22, 0), 6), "Europe/Berlin")],
                      utc(2026, 10, 24, 12), HOUR)
    assert found.slot is not None
    assert found.slot.start == utc(2026, 10, 24, 20)
    assert found.slot.end - found.slot.start == timedelta(hours=6)
    assert found.slot.end.astimezone(BERLIN).time() == time(3, 0)


# --- monthly windows -----------------------------------------------------------------------


def test_patch_tuesday_plus_four_days() -> None:
    # 2nd Tuesday of January 2026 is the 13th; +4 days = Sat 17 Jan, 20:00 CET = 19:00 UTC
    w = [MaintenanceWindow(Monthly(TUE, 2, time(20, 0), 8, offset_days=4), "Europe/Berlin")]
    assert next_window_start(w, utc(2026, 1, 1), 4 * HOUR) == utc(2026, 1, 17, 19)
    # after it: 2nd Tuesday of February is the 10th -> Sat 14 Feb
    assert next_window_start(w, utc(2026, 1, 18), 4 * HOUR) == utc(2026, 2, 14, 19)


def test_monthly_last_weekday_and_missing_fifth_weekday() -> None:
    last_fri = MaintenanceWindow(Monthly(4, -1, time(0, 0), 2), "UTC")
    assert next_window_start([last_fri], utc(2026, 2, 1), HOUR) == utc(2026, 2, 27)
    # a 5th Monday exists in March 2026 (the 30th) but not in February or April
    fifth_mon = MaintenanceWindow(Monthly(0, 5, time(0, 0), 2), "UTC")
    assert next_window_start([fifth_mon], utc(2026, 2, 1), HOUR) == utc(2026, 3, 30)
    assert next_window_start([fifth_mon], utc(2026, 4, 1), HOUR) == utc(2026, 6, 29)


# --- blackouts -----------------------------------------------------------------------------


def test_blackout_cuts_windows_and_the_wave_waits_until_after_it() -> None:
    freeze = Blackout(date(2026, 12, 20), date(2027, 1, 5), "change freeze")
    w = [MaintenanceWindow(Weekly((SAT,), time(22, 0), 6), "Europe/Berlin", blackouts=(freeze,))]
    after = utc(2026, 12, 15)
    # Sat 19 Dec 22:00 local runs into the freeze at midnight: 2 h are left, enough for 1 h...
    assert next_window_start(w, after, HOUR) == utc(2026, 12, 19, 21)
    # ...not for 3 h; 26 Dec and 2 Jan fall inside the freeze: Sat 9 Jan 2027 22:00 CET
    assert next_window_start(w, after, 3 * HOUR) == utc(2027, 1, 9, 21)


def test_policy_wide_blackout_scoped_to_a_tenant() -> None:
    freeze = Blackout(date(2026, 3, 7), date(2026, 3, 8), tenant="acme")
    w = [weekend()]
    after = utc(2026, 3, 4)
    assert next_window_start(w, after, HOUR, cluster="c1", tenants=["globex"],
                             blackouts=[freeze]) == utc(2026, 3, 7, 21)
    # acme's hosts wait for the end of the freeze: Monday 00:00 local, inside Sunday's window
    assert next_window_start(w, after, HOUR, cluster="c1", tenants=["acme"],
                             blackouts=[freeze]) == utc(2026, 3, 8, 23)


def test_no_window_within_the_horizon_gives_none_with_a_reason() -> None:
    freeze = Blackout(date(2026, 1, 1), date(2027, 12, 31), "year of freezes")
    found = find_slot([weekend(blackouts=(freeze,))], utc(2026, 3, 4), HOUR,
                      horizon=timedelta(days=60))
    assert found.slot is None
    assert "within 60 days" in found.reason and "blackout" in found.reason


# --- which windows apply -------------------------------------------------------------------


def test_cluster_window_replaces_default_and_tenant_windows_intersect() -> None:
    default = MaintenanceWindow(Weekly(tuple(range(7)), time(0, 0), 24), "UTC")
    cluster = MaintenanceWindow(Weekly((SAT, SUN), time(22, 0), 6), "Europe/Berlin",
                                cluster="fra1-esx-01")
    # acme allows Sundays 23:00-01:00 Berlin only
    acme = MaintenanceWindow(Weekly((SUN,), time(23, 0), 2), "Europe/Berlin", tenant="acme")
    ws = [default, cluster, acme]
    after = utc(2026, 3, 4, 10)
    assert next_window_start(ws, after, HOUR, cluster="other") == after
    assert next_window_start(ws, after, HOUR, cluster="fra1-esx-01") == utc(2026, 3, 7, 21)
    start = next_window_start(ws, after, HOUR, cluster="fra1-esx-01", tenants=["acme"])
    assert start == utc(2026, 3, 8, 22)  # Sun 8 March 23:00 CET
    assert next_window_start(ws, after, 3 * HOUR, cluster="fra1-esx-01", tenants=["acme"]) \
        is None
    assert fits(ws, utc(2026, 3, 8, 22), HOUR, cluster="fra1-esx-01", tenants=["acme"])
    assert not fits(ws, utc(2026, 3, 8, 22), 2.5 * HOUR, cluster="fra1-esx-01",
                    tenants=["acme"])


def test_touching_occurrences_join() -> None:
    daily = MaintenanceWindow(Weekly(tuple(range(7)), time(0, 0), 24), "UTC")
    assert fits([daily], utc(2026, 3, 4, 12), 40 * HOUR)


# --- property: the slot found is the earliest and really fits ------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    hours=st.integers(1, 12),
    wave=st.integers(60, 12 * 3600),
    after=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                       timezones=st.just(UTC)),
)
def test_found_slot_fits_and_nothing_earlier_does(zone: str, days: set[int], start: time,
                                                  hours: int, wave: int,
                                                  after: datetime) -> None:
    w = [MaintenanceWindow(Weekly(tuple(sorted(days)), start, hours), zone)]
    found = find_slot(w, after, wave, horizon=timedelta(days=15))
    if wave > hours * 3600:
        assert found.slot is None and "longer than" in found.reason
        return
    assert found.slot is not None
    slot = found.slot.start
    assert slot >= after
    assert fits(w, slot, wave)
    if slot > after:
        for probe in (after, after + (slot - after) / 2, slot - timedelta(seconds=60)):
            if probe >= after:
                assert not fits(w, probe, wave), (probe, slot)


# --- the YAML spec -------------------------------------------------------------------------


def test_parse_window_specs_from_the_policy_yaml_shape() -> None:
    windows, blackouts = windows_from_list([
        {"cluster": "fra1-esx-01", "timezone": "Europe/Berlin",
         "weekly": {"days": ["sat", "Sunday"], "start": "22:00", "hours": 6},
         "blackout": [{"from": date(2026, 12, 20), "to": "2027-01-05"}]},
        {"tenant": "acme", "timezone": "Europe/Berlin", "name": "acme patch saturday",
         "monthly": {"weekday": "tue", "nth": 2, "offset_days": 4, "start": "20:00",
                     "hours": 8}},
        {"tenant": "globex", "blackout": [{"from": "2026-11-26", "reason": "sale"}]},
    ])
    assert windows[0].recurrence == Weekly((SAT, SUN), time(22, 0), 6.0)
    assert windows[0].blackouts == (Blackout(date(2026, 12, 20), date(2027, 1, 5)),)
    assert windows[1].recurrence == Monthly(TUE, 2, time(20, 0), 8.0, 4)
    assert windows[1].label == "acme patch saturday"
    assert windows[0].label == "fra1-esx-01: weekly sat,sun 22:00 for 6 h Europe/Berlin"
    assert blackouts == (Blackout(date(2026, 11, 26), date(2026, 11, 26), "sale",
                                  tenant="globex", timezone="UTC"),)


def test_bad_window_specs_name_every_field() -> None:
    with pytest.raises(InputError) as err:
        windows_from_list([
            {"cluster": "c", "tenant": "t", "weekly": {"days": ["sat"], "start": 1320,
                                                      "hours": 6}},
            {"timezone": "Mars/Olympus", "monthly": {"weekday": "tue", "nth": 6, "start": "x",
                                                     "hours": 0}},
            {"weekly": {"days": ["fun"], "start": "22:00", "hours": 6}, "monthly": {}},
            {"blackout": [{"from": "2026-12-20", "to": "2026-12-01"}], "colour": "red"},
        ])
    text = str(err.value)
    for needle in ("windows[0]: give either cluster or tenant",
                   "windows[0].weekly.start", "write it quoted",
                   "windows[1].timezone: unknown time zone 'Mars/Olympus'",
                   "windows[1].monthly.nth", "windows[1].monthly.start",
                   "windows[1].monthly.hours", "windows[2]: give either weekly or monthly",
                   "windows[3].blackout[0]: 'to' (2026-12-01) is before 'from'",
                   "windows[3].colour: unknown field"):
        assert needle in text, needle
