"""The vCenter session: address and TLS, login, error translation, re-login, property reads.

:func:`connect` logs in to vCenter (or an ESXi host) and turns what can go wrong (certificate not
trusted, login refused, unreachable, not a vSphere API) into a :class:`DriverError` that names the
endpoint, never the password. TLS is verified unless the endpoint says ``verify_tls=False`` (then
a warning names the endpoint). :class:`_Session` keeps one logged-in ServiceInstance and logs in
again once when vCenter dropped the session.

Shared by the inventory and the driver: one PropertyCollector read (:func:`_retrieve`), the
traversal of a container view, and the translation of vSphere faults into step errors
(:func:`_step_error`: temporary for a busy object or a passing loss of contact, permanent
otherwise).
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from hvpatch.errors import (
    DriverError,
    InputError,
    PermanentStepError,
    Problem,
    TemporaryStepError,
)
from hvpatch.ports.connector import Endpoint

__all__ = ["connect"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# pyVmomi is untyped: its managed objects and data objects are ``Any`` here, on purpose.
MO = Any

#: faults worth retrying later (a busy object, a passing loss of contact)
_TEMPORARY_FAULTS: tuple[type, ...] = tuple(t for t in (
    getattr(vim.fault, "TaskInProgress", None), getattr(vim.fault, "Timedout", None),
    getattr(vim.fault, "ResourceInUse", None), getattr(vim.fault, "ConcurrentAccess", None),
    getattr(vmodl.fault, "HostCommunication", None),
    getattr(vim.fault, "HostConnectFault", None)) if t is not None)
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _address(endpoint: Endpoint) -> tuple[str, int, str]:
    raw = endpoint.url if "://" in endpoint.url else f"https://{endpoint.url}"
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(f"vSphere connection {endpoint.name}: bad url", [Problem(
            "url", f"{endpoint.url!r}: expected https://vcenter.example[:443][/sdk]")])
    return parts.hostname, parts.port or 443, parts.path.rstrip("/") or "/sdk"


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext:
    if not endpoint.verify_tls:
        log.warning("TLS verification is OFF for vSphere connection %s (%s): anyone on the path "
                    "can read and change what hvpatch sends", endpoint.name, _address(endpoint)[0])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if endpoint.ca_file and not os.path.isfile(endpoint.ca_file):
        raise InputError(f"vSphere connection {endpoint.name}: CA file not found", [
            Problem("ca_file", f"{endpoint.ca_file!r} does not exist")])
    try:
        return ssl.create_default_context(cafile=endpoint.ca_file or None)
    except ssl.SSLError as exc:
        raise InputError(f"vSphere connection {endpoint.name}: unusable CA file", [
            Problem("ca_file", f"{endpoint.ca_file!r}: {exc.reason or exc}")]) from exc


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def connect(endpoint: Endpoint) -> MO:
    """Log in to vCenter (or an ESXi host) and return the ServiceInstance.

    Raises :class:`DriverError` with a message that names the endpoint (never the password):
    certificate not trusted, login refused, unreachable, not a vSphere API.
    """
    host, port, path = _address(endpoint)
    ctx = _ssl_context(endpoint)
    where = f"vSphere connection {endpoint.name} ({host}:{port})"
    try:
        return SmartConnect(host=host, port=port, path=path, user=endpoint.username,
                            pwd=endpoint.password, sslContext=ctx, httpConnectionTimeout=60)
    except vim.fault.InvalidLogin as exc:
        raise DriverError(f"{where}: login as {endpoint.username!r} refused (wrong user name or "
                          "password)") from exc
    except vmodl.MethodFault as exc:
        raise DriverError(f"{where}: {_fault_text(exc)}") from exc
    except Exception as exc:
        tls = _tls_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            raise DriverError(
                f"TLS certificate of {endpoint.name} ({host}:{port}) not trusted: "
                f"{tls.verify_message or tls.reason}; pass ca_file with the CA (PEM) that signed "
                "it, or (only on a lab) verify_tls=False") from exc
        if tls is not None:
            raise DriverError(f"{where}: TLS handshake failed: {tls.reason or tls}") from exc
        if isinstance(exc, _NETWORK_ERRORS):
            raise DriverError(f"{where}: unreachable: {exc}") from exc
        raise DriverError(f"{where}: not usable: {exc}") from exc


def _fault_text(fault: Any) -> str:
    name = getattr(fault, "_wsdlName", type(fault).__name__)
    msg = getattr(fault, "msg", "") or ""
    if not msg and getattr(fault, "faultMessage", None):
        msg = "; ".join(m.message for m in fault.faultMessage if getattr(m, "message", ""))
    privilege = getattr(fault, "privilegeId", None)
    if privilege:   # NoPermission: say which privilege the connection's user lacks, and where
        where = getattr(getattr(fault, "object", None), "_moId", "") or "the object"
        msg = (f"{msg}; " if msg else "") + (f"the user lacks the privilege {privilege} on "
                                             f"{where}: grant it to the connection's role")
    return f"{name}: {msg}" if msg else str(name)


class _Session:
    """One logged-in ServiceInstance, re-established once when vCenter dropped the session."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._si: MO = None
        self._content: MO = None
        self.generation = 0

    @property
    def content(self) -> MO:
        with self._lock:
            if self._si is None:
                self._si = connect(self.endpoint)
                self._content = self._si.RetrieveContent()
                self.generation += 1
            return self._content

    def reset(self) -> None:
        with self._lock:
            self._si = None

    def call(self, fn: Callable[[MO], T]) -> T:
        """``fn(content)``; logs in again and retries once on NotAuthenticated."""
        try:
            return fn(self.content)
        except vim.fault.NotAuthenticated:
            log.info("vSphere session of %s expired; logging in again", self.endpoint.name)
            self.reset()
            return fn(self.content)

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            try:
                Disconnect(si)
            except (vmodl.MethodFault, *_NETWORK_ERRORS) as exc:
                log.info("logout from %s failed: %s", self.endpoint.name, exc)


def _key(obj: MO) -> str:
    return f"{obj._wsdlName}:{obj._moId}"


def _retrieve(content: MO, objs: Sequence[MO], props: Mapping[type, Sequence[str]],
              traverse: MO = None) -> dict[str, dict[str, Any]]:
    """Properties of ``objs`` (or of what ``traverse`` reaches from them), by object key."""
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=o, skip=traverse is not None,
                                 selectSet=[traverse] if traverse is not None else [])
                   for o in objs],
        propSet=[pc.PropertySpec(type=t, pathSet=list(paths)) for t, paths in props.items()])
    out: dict[str, dict[str, Any]] = {}
    result = content.propertyCollector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
    while result is not None:
        for oc in result.objects:
            out[_key(oc.obj)] = {"_obj": oc.obj, **{p.name: p.val for p in oc.propSet}}
        if not result.token:
            break
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
    return out


def _view_traversal() -> MO:
    return vmodl.query.PropertyCollector.TraversalSpec(
        name="view", type=vim.view.ContainerView, path="view", skip=False)


def _step_error(what: str, fault: Any) -> DriverError:
    text = f"{what} failed: {_fault_text(fault)}"
    if isinstance(fault, _TEMPORARY_FAULTS):
        return TemporaryStepError(text, delay=30.0)
    return PermanentStepError(text)

