"""The declarative fault plan: parsing with located problems, round trip, deterministic choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvpatch.adapters.drivers.faults import FAULT_KINDS, Fault, FaultPlan, load_fault_plan
from hvpatch.errors import InputError

EXAMPLE = {
    "seed": 7,
    "faults": [
        {"kind": "install-fails", "hosts": ["esx-prod-03"], "times": 1},
        {"kind": "install-fails", "clusters": ["c1"], "times": "always", "delay_s": 5},
        {"kind": "no-boot", "probability": 0.05},
        {"kind": "migration-fails", "guests": ["db-01"], "times": 2},
        {"kind": "migration-timeout", "timeout_s": 120, "rings": ["prod"]},
        {"kind": "guest-crash", "hosts": ["h3"]},
        {"kind": "perf-regression", "factor": 2.0, "metrics": ["io_latency_ms"]},
        {"kind": "services-unhealthy", "services": ["hostd"]},
        {"kind": "withdraw-release", "after_applies": 3},
        {"kind": "driver-unresponsive", "times": 4, "delay_s": 12.5},
    ],
}


def test_parses_every_kind_with_its_parameters() -> None:
    plan = FaultPlan.from_dict(EXAMPLE)
    assert plan.seed == 7
    assert {f.kind for f in plan.faults} == set(FAULT_KINDS)
    install, always = plan.faults[0], plan.faults[1]
    assert install.hosts == ("esx-prod-03",) and install.times == 1 and not install.permanent
    assert always.permanent and always.times is None and always.delay_s == 5.0
    assert plan.faults[2].probability == 0.05 and plan.faults[2].times == 1
    assert plan.faults[4].timeout_s == 120.0 and plan.faults[4].rings == ("prod",)
    assert plan.faults[6].factor == 2.0 and plan.faults[6].metrics == ("io_latency_ms",)
    assert plan.faults[8].after_applies == 3
    assert plan.needs_rings
    assert "perf-regression" in plan.kinds()


def test_round_trip() -> None:
    plan = FaultPlan.from_dict(EXAMPLE)
    assert FaultPlan.from_dict(plan.to_dict()) == plan
    assert plan.to_dict()["faults"][1]["times"] == "always"
    assert FaultPlan.from_dict(None) == FaultPlan() == FaultPlan.from_dict({})


def test_every_bad_field_is_named() -> None:
    bad = {
        "seed": "x",
        "colour": "red",
        "faults": [
            {"kind": "install-fails", "times": 0},
            {"kind": "explode"},
            {"kind": "no-boot", "factor": 2},          # factor is not a no-boot parameter
            {"kind": "perf-regression", "factor": 0, "metrics": ["cpu"]},
            {"kind": "migration-fails", "probability": 1.5, "guests": []},
            {"kind": "withdraw-release", "after_applies": 0},
            {"kind": "driver-unresponsive", "times": "often", "delay_s": -1},
            {"kind": "guest-crash", "hosts": "h1"},
            "not a mapping",
        ],
    }
    with pytest.raises(InputError) as err:
        FaultPlan.from_dict(bad, where="faults.yaml")
    where = [p.location for p in err.value.problems]
    assert where == [
        "faults.yaml: colour", "faults.yaml: seed",
        "faults.yaml: faults[0].times",
        "faults.yaml: faults[1].kind",
        "faults.yaml: faults[2].factor",
        "faults.yaml: faults[3].metrics", "faults.yaml: faults[3].factor",
        "faults.yaml: faults[4].guests", "faults.yaml: faults[4].probability",
        "faults.yaml: faults[5].after_applies",
        "faults.yaml: faults[6].delay_s", "faults.yaml: faults[6].times",
        "faults.yaml: faults[7].hosts",
        "faults.yaml: faults[8]",
    ]
    text = str(err.value)
    assert "does not apply to no-boot" in text and "unknown 'cpu'" in text
    assert "expected one of install-fails" in text
    with pytest.raises(InputError):
        FaultPlan.from_dict(["a list"])
    with pytest.raises(InputError):
        FaultPlan.from_dict({"faults": {"kind": "no-boot"}})


def test_filters_and_determinism() -> None:
    plan = FaultPlan(3, (
        Fault("install-fails", hosts=("a", "b")),
        Fault("install-fails", clusters=("c1",)),
        Fault("install-fails", rings=("prod",)),
        Fault("no-boot", probability=0.3),
    ))
    assert [i for i, _ in plan.matching("install-fails", "a", "c9", "dev")] == [0]
    assert [i for i, _ in plan.matching("install-fails", "a", "c1", "prod")] == [0, 1, 2]
    assert [i for i, _ in plan.matching("install-fails", "z", "c2", "prod")] == [2]
    assert plan.matching("migration-fails", "a", "c1", "prod") == []
    hosts = [f"host-{n:04d}" for n in range(2000)]
    chosen = [h for h in hosts if plan.matching("no-boot", h)]
    assert 0.25 < len(chosen) / len(hosts) < 0.35
    # the choice depends on (seed, index, host) only: the same in any order, in any process
    assert [h for h in reversed(hosts) if plan.matching("no-boot", h)] == chosen[::-1]
    again = FaultPlan.from_dict(plan.to_dict())
    assert [h for h in hosts if again.matching("no-boot", h)] == chosen
    other_seed = FaultPlan(4, plan.faults)
    assert [h for h in hosts if other_seed.matching("no-boot", h)] != chosen
    assert not [h for h in hosts if FaultPlan(3, (Fault("no-boot", probability=0.0),))
                .matching("no-boot", h)]


def test_load_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("seed: 1\nfaults:\n  - kind: no-boot\n    hosts: [h1]\n    times: always\n")
    plan = load_fault_plan(path)
    assert plan == FaultPlan(1, (Fault("no-boot", hosts=("h1",), times=None),))
    path.write_text("seed: 1\nfaults:\n  - kind: no-boot\n    hosts: [h1\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_fault_plan(path)
    path.write_text("faults:\n  - kind: nope\n")
    with pytest.raises(InputError) as err:
        load_fault_plan(path)
    assert err.value.problems[0].location == f"{path}: faults[0].kind"
