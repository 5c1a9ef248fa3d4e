"""How a KEV finding is judged against its CISA due date (BOD 22-01), at the boundaries."""

from __future__ import annotations

from datetime import date

from hvpatch.adapters.reports.model import display, raw_cell
from hvpatch.services.reports import kev_status

DUE = date(2025, 3, 25)


def test_closed_on_or_before_the_due_date_is_met() -> None:
    assert kev_status(DUE, "closed", DUE, date(2026, 1, 1))["status"] == "met"
    assert kev_status(DUE, "closed", date(2025, 3, 1), DUE)["status"] == "met"


def test_closed_after_the_due_date_is_missed_by_the_days_late() -> None:
    got = kev_status(DUE, "closed", date(2025, 3, 26), date(2026, 1, 1))
    assert got == {"status": "missed", "days_late": 1, "days_left": None}


def test_open_is_pending_through_the_due_date_and_missed_after() -> None:
    assert kev_status(DUE, "open", None, DUE) == {"status": "pending", "days_late": None,
                                                  "days_left": 0}
    assert kev_status(DUE, "open", None, date(2025, 4, 4)) == {
        "status": "missed", "days_late": 10, "days_left": None}


def test_no_due_date_is_said_so() -> None:
    assert kev_status(None, "open", None, DUE)["status"] == "no due date"


def test_cells_for_people_and_for_csv() -> None:
    assert display(None) == "-" and display(True) == "yes"
    assert display("2026-11-29T12:00:00.123+00:00") == "2026-11-29 12:00"
    assert display({"done": 5, "failed": 1}) == "done 5, failed 1"
    assert raw_cell(["a", "b"]) == "a; b" and raw_cell(False) == "false"
    assert raw_cell([{"cve": "CVE-1"}]) == '[{"cve": "CVE-1"}]'
