"""Remediation of Linux KVM/QEMU hosts over SSH: apt or dnf, a reboot, and libvirt for guests.

:class:`SshLinuxDriver` implements :class:`~hvpatch.ports.driver.HypervisorDriver` with asyncssh,
one connection per host. The host's key is always checked against a known_hosts file
(``options["known_hosts"]``, default ``~/.ssh/known_hosts``); an unknown or changed key is a
:class:`~hvpatch.errors.PermanentStepError` that says how to add the key. ``docs/kvm-ssh.md``
lists the options and what each operation runs on the host.

KVM has no maintenance mode: the driver records a marker file (``/var/lib/hvpatch/maintenance``)
and refuses to write it while guests still run on the host. Guests are seen, moved, stopped and
started through libvirt-python when ``options["libvirt_uri"]`` names the host's libvirt (e.g.
``qemu+ssh://root@{address}/system``); without it the driver knows no guests and cannot migrate.

Packages are installed with apt (Debian-likes, detected by ``dpkg-query``) or dnf (RHEL-likes,
detected by ``rpm``), or by a :class:`PatchStep` (an Ansible playbook, say) given to the driver.
Before an install the driver records the versions it replaces on the host
(``/var/lib/hvpatch/previous.json``); :meth:`SshLinuxDriver.rollback` installs them again.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from hvpatch.adapters.connectors.patch_step import PatchStep
from hvpatch.errors import PermanentStepError, TemporaryStepError
from hvpatch.ports.connector import Endpoint
from hvpatch.ports.driver import Components, DriverCapabilities, GuestState, HostState, Probe

try:
    import libvirt
except ImportError:  # pragma: no cover - depends on the installation (extra "kvm")
    libvirt = None

__all__ = ["PatchStep", "SshLinuxDriver"]   # PatchStep is patch_step's, re-exported

STATE_DIR = "/var/lib/hvpatch"
DEFAULT_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
DEFAULT_SERVICE_CHECK = "systemctl is-active {service}"
ENV = "export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin; "
#: how long evidence (a command's output) may be in a message
EVIDENCE_CHARS = 1500
LOCK_DELAY_S = 30.0
UNREACHABLE_DELAY_S = 10.0
_APT_LOCKED = ("Could not get lock", "Unable to acquire the dpkg frontend lock",
               "Unable to lock the administration directory", "dpkg status database is locked")


@dataclass(frozen=True, slots=True)
class _Result:
    exit_status: int
    stdout: str
    stderr: str

    def evidence(self) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()
        return text if len(text) <= EVIDENCE_CHARS else "..." + text[-EVIDENCE_CHARS:]


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _rpm_version(epoch: str, version: str) -> str:
    return version if epoch in ("", "(none)", "0") else f"{epoch}:{version}"


class SshLinuxDriver:
    """KVM/QEMU hosts over SSH (see the module doc; ``docs/kvm-ssh.md`` for the options)."""

    def __init__(self, endpoint: Endpoint, *, patch_step: PatchStep | None = None,
                 connect_timeout_s: float = 15.0, command_timeout_s: float = 900.0) -> None:
        self.endpoint = endpoint
        self.patch_step = patch_step
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        opts = endpoint.options
        self.username = endpoint.username or "root"
        self.port = int(opts.get("port", "22"))
        self.key_file = opts.get("key_file", "")
        self.known_hosts = str(Path(opts.get("known_hosts", "~/.ssh/known_hosts")).expanduser())
        self.packages = _split(opts.get("packages", "qemu-system-x86,libvirt-daemon"))
        self.boot_id_command = opts.get("boot_id_command", DEFAULT_BOOT_ID)
        self.reboot_command = opts.get("reboot_command", "systemctl reboot")
        self.services = _split(opts.get("services", "libvirtd"))
        self.service_check = opts.get("service_check_command", DEFAULT_SERVICE_CHECK)
        self.libvirt_uri = opts.get("libvirt_uri", "")
        self.poll_s = float(opts.get("poll_interval_s", "5"))
        self.apt_update = opts.get("apt_update", "true").lower() == "true"
        self.state_dir = opts.get("state_dir", STATE_DIR)
        sudo = opts.get("sudo", "auto").lower()
        self.sudo = sudo == "true" or (sudo == "auto" and self.username != "root")
        self.addresses: dict[str, tuple[str, int]] = {}
        for item in _split(opts.get("hosts", "")):
            name, _, where = item.partition("=")
            where = where.strip() or name.strip()
            address, sep, port = where.rpartition(":")
            if not sep:
                address, port = where, ""
            self.addresses[name.strip()] = (address, int(port) if port else self.port)
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._managers: dict[str, str] = {}
        self._boot_before: dict[str, str] = {}
        self._guest_host: dict[str, str] = {}

    @property
    def capabilities(self) -> DriverCapabilities:
        """Staging and rollback always; live migration only through libvirt."""
        return DriverCapabilities("kvm-ssh", live_migration=bool(self.libvirt_uri), stage=True,
                                  rollback=True)

    # --- SSH -------------------------------------------------------------------------------

    def address(self, host: str) -> tuple[str, int]:
        """Where ``host`` is reached: ``options["hosts"]`` or the host name itself."""
        return self.addresses.get(host, (host, self.port))

    async def _connect(self, host: str) -> asyncssh.SSHClientConnection:
        conn = self._conns.get(host)
        if conn is not None and not conn.is_closed():
            return conn
        address, port = self.address(host)
        if not Path(self.known_hosts).is_file():
            raise PermanentStepError(
                f"cannot check the SSH host key of {host} ({address}:{port}): the known_hosts "
                f"file {self.known_hosts} does not exist. Add the host's key: "
                f"ssh-keyscan -p {port} {address} >> {self.known_hosts}, after checking its "
                "fingerprint (ssh-keygen -lf) against the host's console")
        try:
            conn = await asyncssh.connect(
                address, port=port, username=self.username, known_hosts=self.known_hosts,
                client_keys=[self.key_file] if self.key_file else None,
                password=self.endpoint.password or None, agent_path=None, config=[],
                connect_timeout=self.connect_timeout_s, keepalive_interval=30)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise PermanentStepError(
                f"SSH host key of {host} ({address}:{port}) is not trusted by "
                f"{self.known_hosts}: it is unknown there or has changed. Check the key's "
                "fingerprint on the host's console (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) "
                f"and add it: ssh-keyscan -p {port} {address} >> {self.known_hosts} "
                "(remove a changed host's old line first: ssh-keygen -R)") from exc
        except asyncssh.PermissionDenied as exc:
            raise PermanentStepError(f"SSH login to {host} ({address}:{port}) as "
                                     f"{self.username} was refused") from exc
        except (OSError, asyncssh.Error) as exc:   # refused, unreachable, timed out, reset
            raise TemporaryStepError(f"cannot reach {host} ({address}:{port}) over SSH: "
                                     f"{type(exc).__name__}: {exc}", UNREACHABLE_DELAY_S) from exc
        self._conns[host] = conn
        return conn

    async def _drop(self, host: str) -> None:
        conn = self._conns.pop(host, None)
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    async def _run(self, host: str, script: str, *, timeout_s: float | None = None,
                   check: bool = True, what: str = "") -> _Result:
        """Run ``script`` with ``sh`` on ``host`` (as root through ``sudo -n`` when the login
        user is not root); a non-zero exit is a PermanentStepError when ``check``."""
        conn = await self._connect(host)
        command = f"sh -c {shlex.quote(ENV + script)}"
        if self.sudo:
            command = "sudo -n " + command
        try:
            done = await conn.run(command, check=False,
                                  timeout=timeout_s or self.command_timeout_s)
        except asyncssh.TimeoutError as exc:
            raise TemporaryStepError(f"{what or script!r} on {host} did not finish within "
                                     f"{timeout_s or self.command_timeout_s:g} s",
                                     LOCK_DELAY_S) from exc
        except (OSError, asyncssh.Error) as exc:
            await self._drop(host)
            raise TemporaryStepError(f"SSH connection to {host} failed during "
                                     f"{what or script!r}: {type(exc).__name__}: {exc}",
                                     UNREACHABLE_DELAY_S) from exc
        result = _Result(int(done.exit_status if done.exit_status is not None else -1),
                         str(done.stdout or ""), str(done.stderr or ""))
        if check and result.exit_status != 0:
            raise PermanentStepError(f"{what or script!r} failed on {host} (exit "
                                     f"{result.exit_status}): {result.evidence()}")
        return result

    async def run_command(self, host: str, script: str, *, what: str = "",
                          timeout_s: float | None = None) -> str:
        """The output of ``script`` run on ``host`` exactly as the driver runs its own commands
        (same connection, environment, sudo, timeout and errors); for readers such as the
        SSH inventory (:mod:`~hvpatch.adapters.connectors.ssh_inventory`)."""
        return (await self._run(host, script, what=what, timeout_s=timeout_s)).stdout

    async def _manager(self, host: str) -> str:
        if host not in self._managers:
            found = await self._run(host, "if command -v dpkg-query >/dev/null; then echo apt; "
                                    "elif command -v rpm >/dev/null; then echo dnf; fi",
                                    what="detect the package manager")
            kind = found.stdout.strip()
            if kind not in ("apt", "dnf"):
                raise PermanentStepError(f"{host} has neither dpkg-query nor rpm: not a "
                                         "Debian- or RHEL-like host this driver can patch")
            self._managers[host] = kind
        return self._managers[host]

    # --- reading ----------------------------------------------------------------------------

    async def installed(self, host: str, packages: tuple[str, ...] | None = None) -> Components:
        """Installed versions of ``packages`` (the tracked ones by default), absent ones left
        out, in the order asked."""
        names = packages if packages is not None else self.packages
        if not names:
            return ()
        quoted = " ".join(shlex.quote(p) for p in names)
        found: dict[str, str] = {}
        if await self._manager(host) == "apt":
            out = await self._run(host, "dpkg-query -W -f='${Package}\\t${Version}\\t"
                                  f"${{db:Status-Abbrev}}\\n' {quoted}", check=False)
            for line in out.stdout.splitlines():
                name, _, rest = line.partition("\t")
                version, _, status = rest.partition("\t")
                if len(status) > 1 and status[1] == "i":   # installed (ii, hi, ...)
                    found[name.split(":")[0]] = version
        else:
            out = await self._run(host, "rpm -q --qf '%{NAME}\\t%{EPOCH}\\t%{VERSION}-%{RELEASE}"
                                  f"\\n' {quoted}", check=False)
            for line in out.stdout.splitlines():
                parts = line.split("\t")
                if len(parts) == 3:
                    found[parts[0]] = _rpm_version(parts[1], parts[2])
        return tuple((n, found[n]) for n in names if n in found)

    async def _boot_id(self, host: str) -> str:
        return (await self._run(host, self.boot_id_command, what="read the boot id",
                                timeout_s=30)).stdout.strip()

    async def _reboot_required(self, host: str) -> bool:
        if await self._manager(host) == "apt":
            script = "test -e /var/run/reboot-required"
        else:   # needs-restarting -r: exit 1 = a reboot is needed; missing tool = unknown
            script = "command -v needs-restarting >/dev/null && ! needs-restarting -r >/dev/null"
        return (await self._run(host, script, check=False, timeout_s=60)).exit_status == 0

    async def _read_json(self, host: str, name: str) -> Any:
        out = await self._run(host, f"cat {shlex.quote(self.state_dir + '/' + name)} "
                              "2>/dev/null || true", timeout_s=30)
        try:
            return json.loads(out.stdout) if out.stdout.strip() else None
        except ValueError:
            return None

    async def _write_json(self, host: str, name: str, value: object) -> None:
        path = shlex.quote(f"{self.state_dir}/{name}")
        await self._run(host, f"mkdir -p {shlex.quote(self.state_dir)} && printf '%s\\n' "
                        f"{shlex.quote(json.dumps(value))} > {path}.tmp && mv {path}.tmp {path}",
                        what=f"record {name}", timeout_s=30)

    async def host_state(self, host: str) -> HostState:
        """Tracked package versions, reboot flag, boot id, maintenance marker, staged versions
        and, through libvirt, guests. An unreachable host is reported as such."""
        try:
            boot_id = await self._boot_id(host)
        except TemporaryStepError:
            return HostState(host, reachable=False, maintenance=False, components=(),
                             boot_id="")
        components = await self.installed(host)
        record = await self._read_json(host, "staged.json")
        current = dict(components)
        staged = tuple((str(n), str(v)) for n, v in (record if isinstance(record, list) else [])
                       if current.get(n) != v)
        marker = await self._run(host, f"test -e {self._marker}", check=False, timeout_s=30)
        return HostState(host, reachable=True, maintenance=marker.exit_status == 0,
                         components=components, boot_id=boot_id, staged=staged,
                         reboot_required=await self._reboot_required(host),
                         guests=await self._guests(host))

    @property
    def _marker(self) -> str:
        return shlex.quote(f"{self.state_dir}/maintenance")

    # --- packages ---------------------------------------------------------------------------

    async def _pending(self, host: str, components: Components) -> Components:
        current = dict(await self.installed(host, tuple(n for n, _ in components)))
        return tuple((n, v) for n, v in components if current.get(n) != v)

    async def _check_available(self, host: str, components: Components) -> None:
        """PermanentStepError naming each package whose version the repositories lack, with
        what they offer."""
        if self.apt_update and await self._manager(host) == "apt":
            await self._apt(host, "apt-get update -q", "apt-get update", timeout_s=600)
        missing = []
        for name, version in components:
            if await self._manager(host) == "apt":   # "name | version | source" per line
                out = await self._run(host, f"apt-cache madison {shlex.quote(name)}",
                                      check=False, timeout_s=120)
                offered = [line.split("|")[1].strip() for line in out.stdout.splitlines()
                           if line.count("|") >= 2]
            else:   # "name.arch  [epoch:]version-release  repo" per line
                out = await self._run(host, "dnf -q list --showduplicates --available "
                                      f"{shlex.quote(name)}", check=False, timeout_s=300)
                offered = [line.split()[1] for line in out.stdout.splitlines()
                           if line.startswith(f"{name}.") and len(line.split()) >= 2]
            if version not in offered and version.split(":")[-1] not in offered:
                missing.append(f"{name} {version} (the repositories offer: "
                               f"{', '.join(dict.fromkeys(offered)) or 'no version at all'})")
        if missing:
            raise PermanentStepError(f"{host}: version not available: {'; '.join(missing)}")

    async def _apt(self, host: str, script: str, what: str, *,
                   timeout_s: float | None = None) -> _Result:
        result = await self._run(host, script, check=False, what=what, timeout_s=timeout_s)
        if result.exit_status != 0:
            if any(s in result.stdout + result.stderr for s in _APT_LOCKED):
                raise TemporaryStepError(f"{what} on {host}: the apt/dpkg lock is held by "
                                         f"another process: {result.evidence()}", LOCK_DELAY_S)
            raise PermanentStepError(f"{what} failed on {host} (exit {result.exit_status}): "
                                     f"{result.evidence()}")
        return result

    def _install_script(self, kind: str, components: Components, *, download_only: bool,
                        downgrade: bool) -> str:
        if kind == "apt":
            specs = " ".join(shlex.quote(f"{n}={v}") for n, v in components)
            flags = "--download-only " if download_only else ""
            flags += "--allow-downgrades " if downgrade else ""
            return ("apt-get install -y -q --no-install-recommends "
                    f"-o Dpkg::Options::=--force-confold {flags}{specs}")
        specs = " ".join(shlex.quote(f"{n}-{v}") for n, v in components)
        verb = "downgrade" if downgrade else "install"
        return f"dnf {verb} -y {'--downloadonly ' if download_only else ''}{specs}"

    async def stage_patch(self, host: str, components: Components) -> None:
        """Download the packages that are not yet at their version, without installing."""
        pending = await self._pending(host, components)
        if not pending:
            return
        await self._check_available(host, pending)
        kind = await self._manager(host)
        await self._apt(host, self._install_script(kind, pending, download_only=True,
                                                   downgrade=False), "download the packages")
        await self._write_json(host, "staged.json", [list(c) for c in pending])

    async def apply_patch(self, host: str, components: Components) -> None:
        """Install the packages that are not yet at their version (nothing when all are),
        recording the versions they replace; through the patch step when one is given."""
        pending = await self._pending(host, components)
        if not pending:
            return
        await self._remember_previous(host, components)
        if self.patch_step is not None:
            evidence = await self.patch_step.apply(host, pending)
        else:
            await self._check_available(host, pending)
            kind = await self._manager(host)
            evidence = (await self._apt(host, self._install_script(
                kind, pending, download_only=False, downgrade=False),
                "install the packages")).evidence()
        still = await self._pending(host, pending)
        if still:
            raise PermanentStepError(
                f"{host}: after the install {', '.join(f'{n} is not at {v}' for n, v in still)}"
                f"; installed now: {dict(await self.installed(host, tuple(n for n, _ in still)))}"
                f"; evidence: {evidence[-EVIDENCE_CHARS:]}")
        await self._run(host, f"rm -f {shlex.quote(self.state_dir + '/staged.json')}",
                        timeout_s=30)

    async def _remember_previous(self, host: str, target: Components) -> None:
        record = await self._read_json(host, "previous.json")
        if isinstance(record, dict) and record.get("target") == [list(c) for c in target]:
            return   # a retried apply: keep what was there before the first attempt
        before = await self.installed(host, tuple(n for n, _ in target))
        await self._write_json(host, "previous.json", {"target": [list(c) for c in target],
                                                       "previous": [list(c) for c in before]})

    async def rollback(self, host: str) -> None:
        """Install again the versions the last apply replaced (idempotent)."""
        record = await self._read_json(host, "previous.json")
        if not isinstance(record, dict) or not record.get("previous"):
            raise PermanentStepError(f"{host}: no previous versions recorded "
                                     f"({self.state_dir}/previous.json): nothing to roll back to")
        previous = tuple((str(n), str(v)) for n, v in record["previous"])
        pending = await self._pending(host, previous)
        if not pending:
            return
        await self._check_available(host, pending)
        kind = await self._manager(host)
        await self._apt(host, self._install_script(kind, pending, download_only=False,
                                                   downgrade=True), "reinstall the previous "
                        "versions")
        still = await self._pending(host, pending)
        if still:
            raise PermanentStepError(f"{host}: rollback left {still} not at the recorded version")

    # --- reboot, readiness, health ----------------------------------------------------------

    async def reboot(self, host: str) -> None:
        """Run the reboot command; the connection dropping is expected."""
        self._boot_before[host] = await self._boot_id(host)
        try:
            result = await self._run(host, self.reboot_command, check=False, timeout_s=60,
                                     what="reboot")
        except TemporaryStepError:   # the connection went down with the host
            result = _Result(0, "", "")
        await self._drop(host)
        if result.exit_status not in (0, -1):
            raise PermanentStepError(f"reboot command failed on {host} (exit "
                                     f"{result.exit_status}): {result.evidence()}")

    async def wait_ready(self, host: str, timeout_s: float) -> None:
        """Reconnect until SSH answers with a boot id other than the one before the reboot."""
        before = self._boot_before.get(host)
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while True:
            try:
                await self._drop(host)
                boot_id = await self._boot_id(host)
                if boot_id and boot_id != before:
                    self._boot_before.pop(host, None)
                    return
                last = f"boot id still {boot_id!r}"
            except TemporaryStepError as exc:
                last = str(exc)
            if time.monotonic() + self.poll_s > deadline:
                raise PermanentStepError(f"{host} is not back within {timeout_s:g} s: {last}")
            await asyncio.sleep(self.poll_s)

    async def probe(self, host: str) -> Probe:
        """Each configured service's state (``systemctl is-active`` by default)."""
        states: dict[str, str] = {}
        for service in self.services:
            out = await self._run(host, self.service_check.format(service=shlex.quote(service)),
                                  check=False, timeout_s=60)
            states[service] = out.stdout.strip().splitlines()[-1] if out.stdout.strip() \
                else f"unknown (exit {out.exit_status})"
        return Probe(services_ok=all(s == "active" for s in states.values()), services=states)

    # --- maintenance (a marker: KVM has no maintenance mode) --------------------------------

    async def enter_maintenance(self, host: str) -> None:
        """Write the marker; refused while guests run on the host (libvirt's view)."""
        running = sorted(g.name for g in await self._guests(host) if g.running)
        if running:
            raise PermanentStepError(f"cannot put {host} into maintenance: guests still run "
                                     f"there: {', '.join(running)}")
        await self._run(host, f"mkdir -p {shlex.quote(self.state_dir)} && "
                        f"date -u +%Y-%m-%dT%H:%M:%SZ > {self._marker}",
                        what="write the maintenance marker", timeout_s=30)

    async def exit_maintenance(self, host: str) -> None:
        """Remove the marker (idempotent)."""
        await self._run(host, f"rm -f {self._marker}", what="remove the maintenance marker",
                        timeout_s=30)

    # --- guests through libvirt -------------------------------------------------------------

    def _uri(self, host: str) -> str:
        address, port = self.address(host)
        return self.libvirt_uri.format(host=host, address=address, port=port)

    async def _libvirt(self, host: str, action: str, fn: Any, *args: Any) -> Any:
        if not self.libvirt_uri:
            raise PermanentStepError(f"cannot {action}: no libvirt_uri is configured for the "
                                     "SSH driver, so it does not see guests")
        if libvirt is None:
            raise PermanentStepError(f"cannot {action}: libvirt-python is not installed "
                                     "(pip install 'hvpatch[kvm]')")

        def call() -> Any:
            conn = libvirt.open(self._uri(host))
            try:
                return fn(conn, *args)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(call)
        except libvirt.libvirtError as exc:
            raise PermanentStepError(f"cannot {action} (libvirt on {host}): "
                                     f"{exc.get_error_message()}") from exc

    async def _guests(self, host: str) -> tuple[GuestState, ...]:
        if not self.libvirt_uri:
            return ()

        def read(conn: Any) -> tuple[GuestState, ...]:
            return tuple(sorted((GuestState(d.name(), host, bool(d.isActive()),
                                            int(d.maxMemory()) // 1024)
                                 for d in conn.listAllDomains()), key=lambda g: g.name))

        guests: tuple[GuestState, ...] = await self._libvirt(host, "list guests", read)
        self._guest_host.update({g.name: host for g in guests})
        return guests

    async def _where(self, guest: str) -> str:
        for host in dict.fromkeys([*([self._guest_host[guest]] if guest in self._guest_host
                                     else []), *self.addresses]):
            if any(g.name == guest for g in await self._guests(host)):
                return host
        raise PermanentStepError(f"guest {guest} is on none of the hosts this driver knows "
                                 f"({', '.join(self.addresses) or 'none configured'})")

    async def migrate_guest(self, guest: str, destination: str) -> None:
        """Live migration through libvirt (``migrate3`` from the source's libvirt)."""
        if not self.libvirt_uri:
            raise PermanentStepError(f"cannot migrate guest {guest}: no libvirt_uri is "
                                     "configured for the SSH driver")
        source = await self._where(guest)
        if source == destination:
            return
        dest_uri = self._uri(destination)

        def migrate(conn: Any) -> None:
            dest = libvirt.open(dest_uri)
            try:
                flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST
                         | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
                conn.lookupByName(guest).migrate3(dest, {}, flags)
            finally:
                dest.close()

        await self._libvirt(source, f"migrate guest {guest} from {source} to {destination}",
                            migrate)
        self._guest_host[guest] = destination

    async def shutdown_guest(self, guest: str) -> None:
        """Ask the guest to shut down and wait until it is off (idempotent)."""
        host = await self._where(guest)

        def shutdown(conn: Any) -> bool:
            dom = conn.lookupByName(guest)
            if dom.isActive():
                dom.shutdown()
            return bool(dom.isActive())

        deadline = time.monotonic() + self.command_timeout_s
        while await self._libvirt(host, f"shut down guest {guest}", shutdown):
            if time.monotonic() > deadline:
                raise PermanentStepError(f"guest {guest} on {host} is still running "
                                         f"{self.command_timeout_s:g} s after the shutdown")
            await asyncio.sleep(self.poll_s)

    async def start_guest(self, guest: str) -> None:
        """Start the guest where it is defined (idempotent)."""
        host = await self._where(guest)

        def start(conn: Any) -> None:
            dom = conn.lookupByName(guest)
            if not dom.isActive():
                dom.create()

        await self._libvirt(host, f"start guest {guest}", start)

    # --- clusters, closing ------------------------------------------------------------------

    async def cluster_settings(self, cluster: str) -> dict[str, str]:
        """Plain KVM hosts have no cluster settings a rollout changes."""
        return {}

    async def set_cluster_settings(self, cluster: str, settings: Mapping[str, str]) -> None:
        """Only the empty set of settings exists."""
        if settings:
            raise PermanentStepError(f"KVM hosts over SSH have no cluster settings; cannot set "
                                     f"{', '.join(sorted(settings))} on {cluster}")

    async def close(self) -> None:
        """Close every SSH connection (idempotent)."""
        for host in list(self._conns):
            await self._drop(host)
