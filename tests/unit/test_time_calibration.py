"""The time model refined from recorded patches: medians, minimum samples, families, migration."""

from __future__ import annotations

import json

import pytest

from hvpatch.domain.planning.calibration import (
    RATIO_BOUNDS,
    PatchObservation,
    calibrate,
    model_as_dict,
    observation_from_steps,
)
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.errors import InputError

BASE = TimeModel()


def obs(family: str | None = "esxi", *, evacuate: float | None = None, planned: float = 0.0,
        rate: float = 1000.0, **seconds: float) -> PatchObservation:
    """An observation with the given seconds per quantity."""
    secs = dict(seconds)
    if evacuate is not None:
        secs["evacuate"] = evacuate
    return PatchObservation("h", family, secs, planned, rate)


def test_recorded_steps_add_up_to_the_model_quantities() -> None:
    o = observation_from_steps("h1", "kvm", {
        "evacuate": 100, "enter-maintenance": 20, "stage": 60, "apply": 540, "reboot": 10,
        "wait-ready": 170, "verify": 5, "checks": 95, "exit-maintenance": 25, "precheck": 3},
        planned_evacuate_s=50.0)
    assert o.seconds == {"evacuate": 100, "enter_maintenance": 20, "install": 600,
                         "reboot": 180, "checks": 100, "exit_maintenance": 25}
    assert (o.host, o.family, o.planned_evacuate_s) == ("h1", "kvm", 50.0)


def test_half_a_quantity_is_no_sample() -> None:
    # the apply never finished (or was reconciled): the stage alone is not an install
    o = observation_from_steps("h1", "esxi", {"stage": 60, "reboot": 10, "wait-ready": -5})
    assert o.seconds == {}


def test_median_per_family_once_there_are_enough_samples() -> None:
    seen = [obs(install=s) for s in (1000, 1100, 5000)]  # one slow host does not move it
    seen += [obs("kvm", install=s) for s in (400, 500)]    # two: too few
    model, cal = calibrate(BASE, seen)
    assert model.install("esxi") == 1100.0
    assert model.install("kvm") == BASE.install("kvm") == 300.0
    rows = {(r.quantity, r.family): r for r in cal.refinements}
    kvm = rows[("install", "kvm")]
    assert (kvm.samples, kvm.median, kvm.value, kvm.applied) == (2, 450.0, 300.0, False)
    assert kvm.note == "2 samples, fewer than 3: default kept"
    assert rows[("install", "hyperv")].note == "no samples: default kept"
    assert model.reboot("esxi") == BASE.reboot("esxi")  # no reboot recorded
    # everything else stays as it was
    assert model_as_dict(model) | {"install_s": {}} == model_as_dict(BASE) | {"install_s": {}}


def test_min_samples_is_a_parameter_and_must_be_positive() -> None:
    seen = [obs("kvm", install=400), obs("kvm", install=500)]
    model, cal = calibrate(BASE, seen, min_samples=2)
    assert model.install("kvm") == 450.0 and cal.min_samples == 2
    for bad in (0, -1, True):
        with pytest.raises(InputError) as info:
            calibrate(BASE, seen, min_samples=bad)
        assert info.value.problems[0].location == "min_samples"


def test_steps_of_every_family_use_samples_of_all_families() -> None:
    seen = [obs("esxi", checks=100), obs("kvm", checks=200), obs(None, checks=300),
            obs("xen", enter_maintenance=10, exit_maintenance=70)]
    model, cal = calibrate(BASE, seen)
    assert model.checks_s == 200.0  # a host gone from the inventory still counts here
    assert model.enter_maintenance_s == BASE.enter_maintenance_s  # one sample
    assert cal.host_patches == 4


def test_a_family_the_base_lacks_is_refined_and_reported() -> None:
    base = TimeModel(install_s={"generic": 600.0}, reboot_s={"generic": 300.0})
    model, cal = calibrate(base, [obs("esxi", install=800)] * 3)
    assert model.install("esxi") == 800.0
    assert model.install("kvm") == 600.0  # the fallback, as before
    assert {r.family for r in cal.refinements if r.quantity == "install"} == {"esxi", "generic"}


def test_migration_rate_and_overhead_scale_by_the_median_ratio() -> None:
    seen = [obs(evacuate=2 * p, planned=p) for p in (100.0, 200.0, 300.0)]
    seen += [obs(evacuate=50.0, planned=0.0), obs(evacuate=None, planned=100.0)]  # not samples
    model, cal = calibrate(BASE, seen)
    assert (model.migration_mib_per_s, model.migration_overhead_s) == (500.0, 10.0)
    # every migration takes twice as long, so does any evacuation the model times
    assert model.migration_seconds(4096) == pytest.approx(2 * BASE.migration_seconds(4096))
    rows = {r.quantity: r for r in cal.refinements}
    assert (rows["migration"].samples, rows["migration"].median) == (3, 2.0)
    assert rows["migration"].unit == "MiB/s" and rows["migration_overhead"].applied


def test_estimates_of_plans_made_with_a_refined_rate_are_rescaled() -> None:
    # a plan made at 500 MiB/s estimated twice the base's seconds; evacuations that took what
    # it said are twice the base, not "as the base says"
    seen = [obs(evacuate=p, planned=p, rate=500.0) for p in (100.0, 200.0, 300.0)]
    model, _cal = calibrate(BASE, seen)
    assert model.migration_mib_per_s == 500.0


@pytest.mark.parametrize(("took", "ratio"), [(0.001, RATIO_BOUNDS[0]), (50.0, RATIO_BOUNDS[1])])
def test_the_migration_ratio_is_bounded(took: float, ratio: float) -> None:
    seen = [obs(evacuate=took * 100, planned=100.0)] * 3
    model, cal = calibrate(BASE, seen)
    assert model.migration_mib_per_s == pytest.approx(BASE.migration_mib_per_s / ratio)
    row = next(r for r in cal.refinements if r.quantity == "migration")
    assert row.applied and row.median == pytest.approx(took)
    assert f"bounded to {ratio:g}" in row.note


def test_unusable_durations_are_not_samples() -> None:
    seen = [obs(install=float("nan")), obs(install=-3.0), obs(install=700.0)]
    _model, cal = calibrate(BASE, seen, min_samples=1)
    row = next(r for r in cal.refinements if (r.quantity, r.family) == ("install", "esxi"))
    assert (row.samples, row.value) == (1, 700.0)


def test_the_report_says_what_changed_and_is_json() -> None:
    seen = [obs(install=1020.0, evacuate=150.0, planned=100.0) for _ in range(3)]
    model, cal = calibrate(BASE, seen, source="real platforms")
    assert cal.refined
    assert cal.describe() == (
        "refined from 3 host patches recorded on real platforms: esxi install 1,020 s "
        "(default 900 s), migration 667 MiB/s (default 1,000 MiB/s), migration overhead "
        "7.5 s (default 5 s); the rest: defaults")
    assert cal.brief().startswith("refined from 3 host patches recorded on real platforms: "
                                  "esxi install 1,020 s, migration 667 MiB/s")
    data = cal.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["refined"] and data["host_patches"] == 3 and data["min_samples"] == 3
    esxi = next(q for q in data["quantities"] if q["quantity"] == "install"
                and q["family"] == "esxi")
    assert esxi == {"quantity": "install", "family": "esxi", "unit": "s", "samples": 3,
                    "default": 900.0, "value": 1020.0, "applied": True, "median": 1020.0,
                    "note": ""}
    assert model_as_dict(model)["install_s"]["esxi"] == 1020.0


def test_without_history_the_model_is_the_base() -> None:
    model, cal = calibrate(BASE, [], source="real platforms")
    assert model == BASE and not cal.refined and cal.brief() == ""
    assert cal.describe() == "defaults (no host patch recorded on real platforms)"
    _model, few = calibrate(BASE, [obs(install=1.0)], source="real platforms")
    assert few.describe() == ("defaults (1 host patch recorded on real platforms, fewer than "
                              "3 samples of every step)")
