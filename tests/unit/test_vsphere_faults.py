"""vSphere faults become clear step errors: a missing privilege is named, with where."""

from __future__ import annotations

from pyVmomi import vim

from hvpatch.adapters.connectors.vsphere.session import _step_error
from hvpatch.errors import PermanentStepError, TemporaryStepError


def test_no_permission_names_the_privilege_and_the_object() -> None:
    host = vim.HostSystem("host-21")
    err = _step_error("enter maintenance on esx1",
                      vim.fault.NoPermission(privilegeId="Host.Config.Maintenance", object=host))
    assert isinstance(err, PermanentStepError)
    assert "NoPermission" in str(err)
    assert "lacks the privilege Host.Config.Maintenance on host-21" in str(err)


def test_a_busy_object_is_worth_retrying() -> None:
    err = _step_error("migrate vm-7", vim.fault.TaskInProgress(msg="busy"))
    assert isinstance(err, TemporaryStepError) and "busy" in str(err)
