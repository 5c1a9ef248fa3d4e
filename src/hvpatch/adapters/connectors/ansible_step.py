"""A patch step that runs an Ansible playbook against one host through ansible-runner.

:class:`AnsiblePatchStep` implements :class:`~hvpatch.adapters.connectors.patch_step.PatchStep`:
:class:`~hvpatch.adapters.connectors.ssh_linux.SshLinuxDriver` hands it the packages to install
and the step runs the playbook with them as the extra var ``hvpatch_packages``
(``[{"name": ..., "version": ...}]``) and ``hvpatch_host``, limited to that one host. The host is
reached as the driver reaches it (address, port, user, key file) and its SSH host key is checked
against the same known_hosts file with ``StrictHostKeyChecking=yes``: never turned off.

The step returns the run's evidence (each task's result, then the tail of ansible's output) and
fails with :class:`~hvpatch.errors.PermanentStepError` naming the task that failed.
``examples/ansible/patch-kvm.yml`` is a playbook for it. Only key-based logins are supported
(a password would need sshpass on the controller).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hvpatch.errors import PermanentStepError
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import Components

__all__ = ["AnsiblePatchStep"]

#: how much of ansible's output the evidence keeps (its tail)
STDOUT_CHARS = 4000
_RESULT_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "FAILED",
                  "runner_on_skipped": "skipped", "runner_on_unreachable": "UNREACHABLE"}


def _search_path() -> str:
    """PATH with ansible-playbook on it: ansible-runner runs it by name (installed beside this
    Python in a virtual environment that is not activated, say)."""
    path = os.environ.get("PATH", os.defpath)
    if shutil.which("ansible-playbook") is None:
        beside = Path(sys.executable).parent
        if (beside / "ansible-playbook").exists():
            path = f"{beside}{os.pathsep}{path}"
    return path


class AnsiblePatchStep:
    """Runs ``playbook`` against one host with the components as ``hvpatch_packages``."""

    def __init__(self, playbook: str | Path, *, key_file: str, known_hosts: str,
                 user: str = "root", port: int = 22,
                 addresses: Mapping[str, tuple[str, int]] | None = None,
                 extra_vars: Mapping[str, Any] | None = None,
                 python_interpreter: str = "/usr/bin/python3", timeout_s: int = 3600) -> None:
        self.playbook = Path(playbook).resolve()
        self.key_file = key_file
        self.known_hosts = str(Path(known_hosts).expanduser())
        self.user = user
        self.port = port
        self.addresses = dict(addresses or {})
        self.extra_vars = dict(extra_vars or {})
        self.python_interpreter = python_interpreter
        self.timeout_s = timeout_s

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, playbook: str | Path, *,
                     extra_vars: Mapping[str, Any] | None = None,
                     timeout_s: int = 3600) -> AnsiblePatchStep:
        """A step that reaches hosts as an :class:`SshLinuxDriver` on ``endpoint`` does."""
        from hvpatch.adapters.connectors.ssh_linux import SshLinuxDriver

        driver = SshLinuxDriver(endpoint)
        return cls(playbook, key_file=driver.key_file, known_hosts=driver.known_hosts,
                   user=driver.username, port=driver.port, addresses=driver.addresses,
                   extra_vars=extra_vars, timeout_s=timeout_s)

    def _inventory(self, host: str) -> dict[str, Any]:
        address, port = self.addresses.get(host, (host, self.port))
        return {"all": {"hosts": {host: {
            "ansible_host": address, "ansible_port": port, "ansible_user": self.user,
            "ansible_ssh_private_key_file": self.key_file,
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} "
                                       "-o StrictHostKeyChecking=yes -o BatchMode=yes",
            "ansible_python_interpreter": self.python_interpreter,
        }}}}

    async def apply(self, host: str, components: Components) -> str:
        """Run the playbook on ``host``; the evidence on success, PermanentStepError naming the
        failed task otherwise."""
        if not self.playbook.is_file():
            raise PermanentStepError(f"Ansible playbook {self.playbook} does not exist")
        if not Path(self.known_hosts).is_file():
            raise PermanentStepError(f"known_hosts file {self.known_hosts} does not exist: "
                                     f"Ansible could not check {host}'s host key")
        extra = {**self.extra_vars, "hvpatch_host": host,
                 "hvpatch_packages": [{"name": n, "version": v} for n, v in components]}
        return await asyncio.to_thread(self._run, host, extra)

    def _run(self, host: str, extra: dict[str, Any]) -> str:
        """Run and judge in one private folder (the runner reads its events from there)."""
        with tempfile.TemporaryDirectory(prefix="hvpatch-ansible-") as work:
            return self._outcome(host, self._start(work, host, extra))

    def _start(self, work: str, host: str, extra: dict[str, Any]) -> Any:
        import ansible_runner

        envvars = {
            "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_NOCOLOR": "1",
            # no persistent SSH masters left behind after the run
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no",
            "PATH": _search_path(),
        }
        return ansible_runner.run(
            private_data_dir=work, playbook=str(self.playbook), inventory=self._inventory(host),
            limit=host, extravars=extra, envvars=envvars, quiet=True, timeout=self.timeout_s)

    def _outcome(self, host: str, runner: Any) -> str:
        lines: list[str] = []
        failed: tuple[str, str] | None = None
        for event in runner.events:
            status = _RESULT_EVENTS.get(event.get("event", ""))
            if status is None:
                continue
            data = event.get("event_data", {})
            task = str(data.get("task", "?"))
            res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
            changed = " (changed)" if res.get("changed") else ""
            lines.append(f"{task}: {status}{changed}")
            if status in ("FAILED", "UNREACHABLE") and not data.get("ignore_errors") \
                    and failed is None:
                why = str(res.get("msg") or res.get("stderr") or res.get("stdout") or "")
                failed = (task, why.strip()[-800:])
        stdout = runner.stdout.read() if runner.stdout is not None else ""
        tail = stdout[-STDOUT_CHARS:]
        evidence = "\n".join([*lines, "--- ansible output (tail) ---", tail])
        if runner.status != "successful" or runner.rc != 0 or failed is not None:
            where = (f"at task '{failed[0]}': {failed[1]}" if failed
                     else f"({runner.status}, exit {runner.rc}): {tail[-800:]}")
            raise PermanentStepError(f"Ansible playbook {self.playbook.name} failed on {host} "
                                     f"{where}")
        return evidence
