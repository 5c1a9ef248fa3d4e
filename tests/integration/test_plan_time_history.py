"""Durations refined from recorded rollouts, on SQLite and PostgreSQL, as a planner notices them.

The history: the demo fleet's campaign (6 ESXi and 3 KVM hosts) rolled out once on a real
platform -- its step records written as the engine writes them -- where the ESXi hosts took
1,200 s to install (default 900 s), 700 s to reboot (default 600 s) and evacuated in twice the
plan's estimate (so migrations ran at 500 MiB/s, not 1,000), and two KVM hosts took 600 s to
install (two samples: too few, the default stays); and once on the simulator, whose much slower
installs must not count unless asked for. Then ``hvpatch plan create`` plans with the refined
model, ``--no-history`` with the defaults, and ``hvpatch plan timing`` shows the calibration.
The last test runs a real simulated rollout and finds its records with ``include_simulated``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from api_support import fast_hashes, running, wait_job  # noqa: F401
from hvpatch.adapters.drivers.twin import STAGE_SECONDS
from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import RolloutRow, RolloutStepRow
from hvpatch.cli.main import app
from hvpatch.domain.generator import demo_fleet
from hvpatch.domain.planning.gates import plan_policy_from_dict
from hvpatch.domain.planning.model import CampaignPlan
from hvpatch.domain.planning.timing import TimeModel
from hvpatch.domain.rollout import HOST_STEPS, RolloutPolicy
from hvpatch.orchestration.runner import drive, simulator_spec, start_rollout
from hvpatch.services.bundled import bundled_feeds_dir
from hvpatch.services.feeds import import_feeds
from hvpatch.services.findings import refresh_findings
from hvpatch.services.inventory import import_fleet, load_fleet
from hvpatch.services.plans import create_plan, get_plan
from hvpatch.services.risk import assess_risk
from hvpatch.services.rollouts import create_rollout
from hvpatch.services.timing_history import time_model_from_history
from rollout_support import make_plan

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = {"ha_reserve_hosts": 0, "pinned_guests": "skip-host"}
REAL = {"name": "connection", "connection": "vcenter-fra1", "kind": "vsphere"}
DEFAULTS = TimeModel()
#: seconds per recorded step of the real rollout (evacuate: times the plan's estimate)
ESXI = {"precheck": 5, "enter-maintenance": 40, "stage": 120, "apply": 1080, "reboot": 30,
        "wait-ready": 670, "verify": 20, "checks": 160, "exit-maintenance": 50, "restart": 0,
        "guest-checks": 10}
KVM = {**ESXI, "stage": 30, "apply": 570}


@pytest.fixture
def history(store: Store) -> Iterator[dict[str, Any]]:
    """The history of the module doc; the plan it was recorded for, and its hosts by family."""
    import_fleet(store, demo_fleet(7), source="demo", sha256="")
    import_feeds(store, [bundled_feeds_dir()], now=NOW)
    refresh_findings(store, now=NOW)
    assess_risk(store, now=NOW)
    _id, plan = create_plan(store, requester="alice", name="before", policy=_policy(),
                            now=NOW)
    family = {h.name: h.family.value for h in load_fleet(store).hosts()}
    hosts = [h.host for w in plan.waves() for h in w.hosts]
    esxi = [h for h in hosts if family[h] == "esxi"]
    kvm = [h for h in hosts if family[h] == "kvm"]
    assert len(esxi) == 6 and len(kvm) == 3
    steps = {h: ESXI for h in esxi} | {h: KVM for h in kvm[:2]}
    _record(store, plan, "real", REAL, steps, evacuation=2.0, reconciled=esxi[0])
    _record(store, plan, "sim", {"name": "simulator", "speed": 3600.0},
            {h: {**ESXI, "apply": 4880} for h in esxi}, evacuation=1.0)
    yield {"plan": plan, "esxi": esxi, "kvm": kvm, "family": family}


def _policy() -> Any:
    return plan_policy_from_dict(POLICY)


def _record(store: Store, plan: CampaignPlan, name: str, driver: dict[str, Any],
            steps: dict[str, dict[str, int]], *, evacuation: float,
            reconciled: str | None = None) -> None:
    """A completed rollout of ``plan`` whose step records say the hosts took ``steps``.

    Written as the engine writes them: each attempt a row, started then finished or failed.
    Every host's first apply fails (a long attempt that must not count) and is retried; the
    ``reconciled`` host's reboot was interrupted by a crash and found done on resume.
    """
    rid = create_rollout(store, "before", requester="alice", driver=driver,
                         policy=RolloutPolicy(), name=name)
    estimate = {h.host: h.seconds["evacuate"] for w in plan.waves() for h in w.hosts}
    at = NOW + timedelta(days=1)
    rows = []
    for host, took in steps.items():
        for step in HOST_STEPS:
            seconds = estimate[host] * evacuation if step == "evacuate" else took[step]
            if step == "apply":
                rows.append(_row(rid, host, step, 1, "failed", at, 9_000))
                at += timedelta(seconds=9_030)
            if step == "reboot" and host == reconciled:
                rows.append(_row(rid, host, step, 1, "started", at, None))
                at += timedelta(seconds=400)
                rows.append(_row(rid, host, step, 1, "finished", at, 1,
                                 {"already_done": True}))
                at += timedelta(seconds=1)
                continue
            rows.append(_row(rid, host, step, 2 if step == "apply" else 1, "finished", at,
                             seconds))
            at += timedelta(seconds=seconds + 3)
    with store.session() as s:
        s.add_all(rows)
        s.execute(update(RolloutRow).where(RolloutRow.id == rid)
                  .values(state="completed", finished=at))
        s.commit()


def _row(rid: int, host: str, step: str, attempt: int, state: str, start: datetime,
         seconds: float | None, evidence: dict[str, Any] | None = None) -> RolloutStepRow:
    return RolloutStepRow(rollout_id=rid, host=host, ring="prod", step=step, attempt=attempt,
                          state=state, started=start,
                          finished=None if seconds is None else start + timedelta(
                              seconds=seconds),
                          error="simulated fault" if state == "failed" else "",
                          evidence=evidence or {})


def _rows(calibration: Any) -> dict[tuple[str, str], Any]:
    return {(r.quantity, r.family): r for r in calibration.refinements}


def test_history_refines_what_has_enough_samples_and_keeps_the_rest(
        store: Store, history: dict[str, Any]) -> None:
    model, cal = time_model_from_history(store)
    assert cal.host_patches == 8  # the simulated rollout does not count
    assert model.install("esxi") == 1200.0  # stage + apply; the failed attempt left out
    assert model.reboot("esxi") == 700.0    # reboot + wait-ready
    rows = _rows(cal)
    assert rows[("reboot", "esxi")].samples == 5  # the reconciled reboot times nothing
    assert model.install("kvm") == DEFAULTS.install("kvm") == 300.0  # 2 samples only
    kvm = rows[("install", "kvm")]
    assert (kvm.samples, kvm.median, kvm.applied) == (2, 600.0, False)
    assert "fewer than 3" in kvm.note
    assert model.install("hyperv") == DEFAULTS.install("hyperv")  # nothing recorded
    assert (model.checks_s, model.enter_maintenance_s, model.exit_maintenance_s) == (180, 40, 50)
    # evacuations took twice as long: every migration does, bandwidth and overhead alike
    assert (model.migration_mib_per_s, model.migration_overhead_s) == (500.0, 10.0)
    assert cal.describe().startswith("refined from 8 host patches recorded on real platforms: "
                                     "esxi install 1,200 s (default 900 s)")
    assert json.loads(json.dumps(cal.as_dict())) == cal.as_dict()

    loose, cal = time_model_from_history(store, min_samples=2)
    assert loose.install("kvm") == 600.0 and cal.min_samples == 2

    both, cal = time_model_from_history(store, include_simulated=True)
    assert cal.host_patches == 14 and _rows(cal)[("install", "esxi")].samples == 12
    assert both.install("esxi") == (1200.0 + 5000.0) / 2  # the median of 6 and 6


def test_no_history_means_the_defaults(store: Store) -> None:
    model, cal = time_model_from_history(store)
    assert model == DEFAULTS and not cal.refined and cal.host_patches == 0
    assert cal.describe() == "defaults (no host patch recorded on real platforms)"


def _hosts(plan: CampaignPlan) -> dict[str, dict[str, float]]:
    return {h.host: h.seconds for w in plan.waves() for h in w.hosts}


def test_plan_create_uses_history_and_says_so(store: Store, store_url: str, tmp_path: Path,
                                              history: dict[str, Any]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ha_reserve_hosts: 0\npinned_guests: skip-host\n")
    runner = CliRunner(env={"HVPATCH_ACTOR": "alice", "COLUMNS": "200"})
    refined = runner.invoke(app, ["--db", store_url, "plan", "create", "--name", "refined",
                                  "--policy", str(policy)])
    assert refined.exit_code == 0, refined.output
    assert ("time model: refined from 8 host patches recorded on real platforms: esxi install "
            "1,200 s (default 900 s), esxi reboot 700 s (default 600 s)") in refined.stdout
    plain = runner.invoke(app, ["--db", store_url, "plan", "create", "--name", "plain",
                                "--policy", str(policy), "--no-history", "-o", "json"])
    assert plain.exit_code == 0, plain.output
    created = json.loads(plain.stdout)
    assert created["time_model"]["used"] == "built-in defaults (--no-history)"
    assert created["time_model"]["calibration"] is None

    _meta, new = get_plan(store, "refined")
    _meta, old = get_plan(store, "plain")
    before = _hosts(history["plan"])
    for host, secs in _hosts(new).items():
        family = history["family"][host]
        assert secs["install"] == (1200.0 if family == "esxi" else DEFAULTS.install(family))
        assert secs["reboot"] == (700.0 if family == "esxi" else DEFAULTS.reboot(family))
        assert secs["checks"] == 180.0
    # every migration takes twice as long (rate halved, overhead doubled), and so on: the plan
    # is the one this model makes
    expected = TimeModel(migration_mib_per_s=500.0, migration_overhead_s=10.0,
                         install_s={**DEFAULTS.install_s, "esxi": 1200.0},
                         reboot_s={**DEFAULTS.reboot_s, "esxi": 700.0}, checks_s=180.0,
                         enter_maintenance_s=40.0, exit_maintenance_s=50.0)
    _id, same = create_plan(store, requester="alice", name="expected", policy=_policy(),
                            now=NOW, timing=expected)
    assert _hosts(new) == _hosts(same) and new.seconds == same.seconds
    evacuations = [(before[h]["evacuate"], s["evacuate"]) for h, s in _hosts(new).items()]
    assert sum(b for b, _ in evacuations) > 0
    assert sum(n for _, n in evacuations) == pytest.approx(2 * sum(b for b, _ in evacuations))
    assert _hosts(old) == before  # --no-history: the built-in model, as before
    assert new.seconds > old.seconds
    assert any(n.startswith("time model refined from 8 host patches") for n in new.notes)
    assert not any(n.startswith("time model") for n in old.notes)

    # the refined plan's shorter estimates do not pull the next refinement back
    model, _cal = time_model_from_history(store)
    assert model.migration_mib_per_s == pytest.approx(500.0)


def test_the_api_plans_with_history_unless_told_not_to(store: Store,
                                                       history: dict[str, Any]) -> None:
    with running(store) as api:
        operator = api.client("operator")
        jobs = {}
        for name, body in (("api-refined", {}), ("api-plain", {"history": False})):
            started = operator.post("/api/v1/plans", json={"name": name, "policy": POLICY,
                                                           **body})
            assert started.status_code == 202, started.text
            jobs[name] = wait_job(operator, started.json()["id"])
    refined, plain = jobs["api-refined"], jobs["api-plain"]
    assert refined["state"] == plain["state"] == "done", (refined, plain)
    assert refined["result"]["time_model"]["host_patches"] == 8
    assert plain["result"]["time_model"] is None
    _meta, new = get_plan(store, "api-refined")
    _meta, old = get_plan(store, "api-plain")
    esxi = history["esxi"][1]
    assert (_hosts(new)[esxi]["install"], _hosts(old)[esxi]["install"]) == (1200.0, 900.0)


def test_plan_timing_shows_the_calibration(store: Store, store_url: str, tmp_path: Path,
                                           history: dict[str, Any]) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    shown = runner.invoke(app, ["--db", store_url, "plan", "timing", "--output", "json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["model"]["install_s"]["esxi"] == 1200.0
    assert data["model"]["migration_mib_per_s"] == pytest.approx(500.0)
    cal = data["calibration"]
    assert cal["host_patches"] == 8 and cal["refined"]
    rows = {(q["quantity"], q["family"]): q for q in cal["quantities"]}
    assert rows[("install", "esxi")] | {"note": ""} == {
        "quantity": "install", "family": "esxi", "unit": "s", "samples": 6, "default": 900.0,
        "value": 1200.0, "applied": True, "median": 1200.0, "note": ""}
    assert not rows[("install", "kvm")]["applied"]

    simulated = json.loads(runner.invoke(app, ["--db", store_url, "plan", "timing",
                                               "--include-simulated", "-o", "json"]).stdout)
    assert simulated["calibration"]["host_patches"] == 14

    table = runner.invoke(app, ["--db", store_url, "plan", "timing", "--min-samples", "2"])
    assert table.exit_code == 0, table.output
    assert "time model: refined from 8 host patches" in table.stdout
    assert "kvm install 600 s (default 300 s)" in table.stdout  # 2 samples are enough now

    bad = subprocess.run([sys.executable, "-m", "hvpatch", "plan", "timing", "--min-samples",
                          "0"], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "HVPATCH_DATABASE_URL": store_url,
                              "XDG_DATA_HOME": str(tmp_path)})
    assert bad.returncode == 2
    assert "--min-samples" in bad.stderr and "expected 1 or more" in bad.stderr


def test_a_simulated_rollout_is_found_only_when_asked_for(store: Store) -> None:
    plan = make_plan(store, hosts=16, seed=2)
    name = start_rollout(store, "p1", requester="alice", name="sim",
                         policy=RolloutPolicy(retry_backoff_s=1),
                         driver=simulator_spec(speed=36_000.0, start=NOW))
    assert asyncio.run(drive(store, name, heartbeat_s=0.2)) == "completed"
    patched = len([h for w in plan.waves() for h in w.hosts])
    assert patched == 12

    _model, real = time_model_from_history(store)
    assert real.host_patches == 0 and not real.refined

    model, cal = time_model_from_history(store, include_simulated=True)
    assert cal.host_patches == patched
    rows = _rows(cal)
    for family, hosts in (("ahv", 3), ("xen", 4), ("esxi", 5)):
        install = rows[("install", family)]
        assert install.samples == hosts and install.applied
        # the simulator sleeps the staging and the model's install; a record is never shorter
        assert model.install(family) >= STAGE_SECONDS + DEFAULTS.install(family)
    assert cal.describe().startswith("refined from 12 host patches recorded on real and "
                                     "simulated platforms")
