"""User suites as ring checks, with real subprocesses: exit codes, environment, timeouts,
pytest files, and Ansible (missing, and a stand-in on PATH)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from hvpatch.adapters.checks.suites import TAIL_BYTES, TAIL_LINES, SuiteCheck, suite_checks
from hvpatch.domain.rollout import SuiteSpec, rollout_policy_from_dict
from hvpatch.errors import InputError
from hvpatch.ports.checks import Check, CheckContext, CheckResult
from hvpatch.ports.driver import HypervisorDriver

CTX = CheckContext("rollout-7", "canary", ("h1", "h2"))
NO_DRIVER = cast(HypervisorDriver, None)  # suites do not talk to the platform

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def run(spec: SuiteSpec, ctx: CheckContext = CTX, **kw: Any) -> CheckResult:
    check = SuiteCheck(spec, **kw)
    result = asyncio.run(check.run(ctx, NO_DRIVER))
    assert result.name == f"suite:{spec.name}"
    json.dumps(result.evidence)
    return result


def test_a_suite_is_a_ring_check_and_the_factory_filters_by_ring() -> None:
    policy = rollout_policy_from_dict({"suites": [
        {"name": "smoke", "kind": "command", "run": "true"},
        {"name": "prod-only", "kind": "pytest", "run": "tests/", "rings": ["prod"],
         "timeout_s": 60},
    ]})
    checks = suite_checks(policy.suites, "canary")
    assert [c.name for c in checks] == ["suite:smoke"]
    assert [c.name for c in suite_checks(policy.suites, "prod")] == ["suite:smoke",
                                                                     "suite:prod-only"]
    assert len(suite_checks(policy.suites)) == 2
    assert all(isinstance(c, Check) and c.scope == "ring" for c in checks)
    with pytest.raises(InputError):
        SuiteCheck(SuiteSpec("x", "bash", "true"))


def test_passing_and_failing_shell_commands() -> None:
    ok = run(SuiteSpec("smoke", "command", "echo hello && echo oops >&2"))
    assert ok.ok and ok.evidence["exit_code"] == 0
    assert ok.evidence["output"].splitlines() == ["hello", "oops"]  # stdout and stderr
    assert ok.evidence["duration_s"] >= 0 and not ok.evidence["timed_out"]
    assert ok.evidence["argv"][:2] == ["/bin/sh", "-c"]
    bad = run(SuiteSpec("smoke", "command", "echo checking; exit 3"))
    assert not bad.ok and bad.evidence["exit_code"] == 3
    assert "failed with exit code 3" in bad.summary and bad.evidence["output"] == "checking"


def test_the_suite_sees_the_rollout_ring_and_hosts(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVPATCH_DATABASE_URL", "postgresql://u:secret@db/x")
    monkeypatch.setenv("SITE_TOKEN", "inherited")
    r = run(SuiteSpec("env", "command",
                      'echo "$HVPATCH_ROLLOUT|$HVPATCH_RING|$HVPATCH_HOSTS|$HVPATCH_SUITE"; pwd; '
                      'echo "$SITE_TOKEN|$HVPATCH_DATABASE_URL"'), cwd=tmp_path)
    assert r.ok
    assert r.evidence["output"].splitlines() == ["rollout-7|canary|h1,h2|env",
                                                 str(tmp_path.resolve()), "inherited|"]


def test_a_suite_that_runs_too_long_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    # a child in the background, and the shell waiting: both must die at the timeout
    spec = SuiteSpec("slow", "command", f"(sleep 3; touch {marker}) & echo started; sleep 30",
                     timeout_s=0.5)
    started = time.monotonic()
    r = run(spec)
    assert time.monotonic() - started < 10
    assert not r.ok and r.summary == "suite slow: timed out after 0.5 s"
    assert r.evidence["timed_out"] and r.evidence["exit_code"] == -9
    assert r.evidence["output"] == "started"
    time.sleep(3.5)
    assert not marker.exists(), "the background child outlived the timeout"


def test_a_leftover_background_process_holding_the_output_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "leftover"
    r = run(SuiteSpec("bg", "command", f"(sleep 4; touch {marker}) & echo done"))
    assert r.ok and r.evidence["output"] == "done"
    time.sleep(4.5)
    assert not marker.exists()


def test_only_the_end_of_a_long_output_is_kept() -> None:
    r = run(SuiteSpec("loud", "command", "i=0; while [ $i -lt 3000 ]; do echo line-$i; "
                      "i=$((i+1)); done"))
    lines = r.evidence["output"].splitlines()
    assert r.ok and r.evidence["output_truncated"]
    assert len(lines) == TAIL_LINES and lines[-1] == "line-2999"
    assert len(r.evidence["output"]) <= TAIL_BYTES
    assert r.evidence["output_bytes"] > TAIL_BYTES
    big = run(SuiteSpec("wide", "command", "head -c 100000 /dev/zero | tr '\\0' x; echo; "
                        "echo end"))
    assert len(big.evidence["output"].encode()) <= TAIL_BYTES
    assert big.evidence["output"].endswith("end")


def test_a_real_pytest_file_passing_and_failing(tmp_path: Path) -> None:
    (tmp_path / "test_ring.py").write_text(
        "import os\n\n"
        "def test_hosts():\n"
        "    assert os.environ['HVPATCH_HOSTS'].split(',') == ['h1', 'h2']\n")
    ok = run(SuiteSpec("py", "pytest", "test_ring.py"), cwd=tmp_path)
    assert ok.ok, ok.evidence["output"]
    assert ok.evidence["argv"][:4] == [sys.executable, "-m", "pytest", "-q"]
    assert "1 passed" in ok.evidence["output"]
    (tmp_path / "test_bad.py").write_text("def test_latency():\n    assert 7 < 5\n")
    bad = run(SuiteSpec("py", "pytest", str(tmp_path / "test_bad.py")), cwd=tmp_path)
    assert not bad.ok and bad.evidence["exit_code"] == 1
    assert "1 failed" in bad.evidence["output"] and "assert 7 < 5" in bad.evidence["output"]
    # extra pytest arguments after the path are passed on, without a shell
    sel = run(SuiteSpec("py", "pytest", "test_bad.py test_ring.py -k hosts"), cwd=tmp_path)
    assert sel.ok and "1 passed, 1 deselected" in sel.evidence["output"]


def test_ansible_missing_is_a_failed_check_not_an_exception(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = run(SuiteSpec("play", "ansible", "site.yml"))
    assert not r.ok and "ansible-playbook is not installed" in r.summary
    assert r.evidence["exit_code"] is None


def test_ansible_gets_the_ring_hosts_as_inventory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "ansible-playbook"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    r = run(SuiteSpec("play", "ansible", "site.yml --check"))
    assert r.ok and r.evidence["output"] == "-i h1,h2, site.yml --check"


def test_a_bad_command_line_fails_the_check() -> None:
    r = run(SuiteSpec("py", "pytest", "'unbalanced"))
    assert not r.ok and "cannot parse" in r.summary
    r = run(SuiteSpec("smoke", "command", "true"), cwd="/nonexistent/dir")
    assert not r.ok and "cannot start" in r.summary
