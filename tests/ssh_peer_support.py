"""A real SSH peer for the KVM-over-SSH driver: a Debian root, a local apt repository and sshd.

What :func:`start_peer` builds (``docs/kvm-ssh.md`` describes the peer):

* a Debian bookworm root made by ``debootstrap --variant=minbase`` (with python3 and python3-apt
  so Ansible's apt module runs in it) from the machine's own Debian mirror, cached in
  the user's cache folder (``~/.cache/hvpatch-tests/ssh-peer/root``, or under
  ``HVPATCH_TEST_CACHE``) and reused between runs. It is built in a temporary
  folder that is renamed into place only at the end, with a marker file carrying
  :data:`ROOT_VERSION`, so an interrupted build is never reused; each session (each pytest
  worker) works on a copy of it of its own;
* a local apt repository in the root (``/srv/repo``, the root's only source: ``deb [trusted=yes]
  copy:/srv/repo ./``, which apt treats like a remote mirror, downloading into its cache) with
  two versions of a dependency-free ``qemu-system-x86`` made with dpkg-deb and indexed with
  dpkg-scanpackages (and a third, :data:`LATEST`, for the full-flow test); the older one is
  installed at set-up;
* the machine's own ``sshd`` with a configuration of its own: ``ListenAddress 127.0.0.1``, a free
  port, a host key and a user key generated per session, ``ChrootDirectory`` to the root (so
  every command runs on the peer's files), and a known_hosts file holding the host key.
  ``/proc`` is mounted in the root for the session (apt and dpkg want it) and unmounted at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cache_dir() -> Path:
    """Where the Debian root is kept between runs: the user's cache folder (XDG), not the
    checkout, because sshd's ChrootDirectory refuses a path that has a group- or world-writable
    folder on it (a checkout under /tmp would); ``HVPATCH_TEST_CACHE`` overrides it."""
    base = (os.environ.get("HVPATCH_TEST_CACHE") or os.environ.get("XDG_CACHE_HOME")
            or str(Path.home() / ".cache"))
    return Path(base) / "hvpatch-tests" / "ssh-peer"


CACHE = _cache_dir()
#: changes whenever the way the root is built changes, so an old cached root is rebuilt
ROOT_VERSION = "bookworm-minbase+python3,python3-apt;v1"
INCLUDE = "python3,python3-apt"
PACKAGE = "qemu-system-x86"
OLD = "1:7.2+dfsg-7+deb12u5"
NEW = "1:7.2+dfsg-7+deb12u6"
#: a third build in the repository: the newest bookworm version the bundled Debian changelog of
#: qemu lists (src/hvpatch/data/feeds/debian/qemu-system-common/changelog.Debian.gz), which fixes
#: every CVE that changelog names for OLD -- the target the planner picks for a host at OLD
#: (tests/contract/test_kvm_ssh_full_flow.py)
LATEST = "1:7.2+dfsg-7+deb12u18"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


IN_CI = os.environ.get("CI", "").lower() == "true"


class PeerUnavailable(Exception):
    """The peer cannot be built here (not root, no debootstrap, no network): skip or fail."""


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The machine's Debian mirror (the first ``.../debian`` URI of its apt sources)."""
    env = os.environ.get("HVPATCH_TEST_DEBIAN_MIRROR")
    if env:
        return env
    files = [*sorted((sources / "sources.list.d").glob("*")), sources / "sources.list"]
    for f in files:
        with contextlib.suppress(OSError):
            for m in re.finditer(r"(https?://\S+?/debian)/?(?:\s|$)", f.read_text()):
                return m.group(1)
    return DEFAULT_MIRROR


def _run(cmd: list[str], *, timeout: float = 120, **kw: object) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                         **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout)[-2000:]}")
    return str(res.stdout)


def _chroot(root: Path, script: str, *, timeout: float = 120) -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "LC_ALL": "C"}
    return _run(["chroot", str(root), "/bin/sh", "-ec", script], timeout=timeout, env=env)


def unavailable_reason() -> str | None:
    """Why no peer can be built here, or None."""
    if os.geteuid() != 0:
        return "the SSH peer needs root (chroot, debootstrap, sshd)"
    for tool in ("debootstrap", "sshd", "ssh-keygen", "ssh-keyscan", "dpkg-deb",
                 "dpkg-scanpackages", "chroot"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (scripts/install-test-packages.sh installs it)"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def ensure_root(cache: Path = CACHE) -> Path:
    """The cached Debian root, built now when missing or outdated (a few minutes, once).

    Pytest workers that ask at the same time wait for one build (an exclusive lock file)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_root(cache)


def _ensure_root(cache: Path) -> Path:
    root, marker = cache / "root", cache / "root" / ".hvpatch-root-version"
    if marker.exists() and marker.read_text().strip() == ROOT_VERSION:
        return root
    reason = unavailable_reason()
    if reason:
        raise PeerUnavailable(reason)
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("build-*"):   # an interrupted build: never reused
        _unmount_all(old)
        shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    os.chmod(tmp, 0o755)
    mirror = debian_mirror()
    try:
        _run([_tool("debootstrap"), "--variant=minbase", f"--include={INCLUDE}", "bookworm",
              str(tmp), mirror], timeout=1800)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        _unmount_all(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        raise PeerUnavailable(f"debootstrap from {mirror} failed (network?): "
                              f"{str(exc)[-600:]}") from exc
    (tmp / "etc/apt/sources.list").write_text("deb [trusted=yes] file:/srv/repo ./\n")
    for extra in (tmp / "etc/apt/sources.list.d").glob("*"):
        extra.unlink()
    _run(["chroot", str(tmp), "apt-get", "clean"])
    (tmp / ".hvpatch-root-version").write_text(ROOT_VERSION + "\n")
    if root.exists():
        _unmount_all(root)
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _unmount_all(path: Path) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def build_package(out: Path, version: str, *, name: str = PACKAGE) -> Path:
    """A dependency-free ``.deb`` of ``name`` at ``version`` (a file naming its version)."""
    tree = out / f"tree-{version.replace(':', '_')}"
    doc = tree / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "hvpatch-test-version").write_text(version + "\n")
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nSection: otherosfs\n"
        "Priority: optional\nMaintainer: hvpatch tests <tests@hvpatch.invalid>\n"
        "Description: QEMU stand-in for hvpatch's SSH driver tests\n"
        " No dependencies, one file: enough for apt and dpkg to install, upgrade and downgrade.\n")
    deb = out / f"{name}_{version.split(':')[-1]}_all.deb"
    _run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)])
    shutil.rmtree(tree)
    return deb


def build_repo(root: Path) -> None:
    """The peer's apt repository (``/srv/repo``) with OLD, NEW and LATEST, indexed."""
    repo = root / "srv/repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    for version in (OLD, NEW, LATEST):
        build_package(repo, version)
    packages = _run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo)
    (repo / "Packages").write_text(packages)


def reset_root(root: Path) -> None:
    """Put the peer back to its starting point: the old version installed, no hvpatch markers,
    no reboot-required flag, nothing downloaded, a fresh test boot id.

    Paths are the root's own (``run/...``, not ``var/run/...``: that is a symlink to ``/run``,
    which outside the chroot is the machine's)."""
    for leftover in ("var/lib/hvpatch", "run/reboot-required", "var/lib/hvpatch-test"):
        p = root / leftover
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.is_file():
            p.unlink()
    for run_file in (root / "run").glob("hvpatch-test-*"):
        run_file.unlink()
    installed = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Version}",
                                PACKAGE], capture_output=True, text=True, check=False)
    if installed.stdout.strip() != OLD:
        _chroot(root, f"apt-get install -y -q --allow-downgrades --no-install-recommends "
                f"'{PACKAGE}={OLD}'", timeout=180)
    _chroot(root, "apt-get clean")
    (root / "var/lib/hvpatch-test").mkdir(parents=True)
    (root / BOOT_ID_FILE.lstrip("/")).write_text("boot-1\n")


#: the peer's test boot id: a driver reads it to tell that the host rebooted
BOOT_ID_FILE = "/var/lib/hvpatch-test/boot_id"
#: the peer is a chroot, not a machine: "rebooting" it changes its boot id a second later
FAKE_REBOOT = f"(sleep 1; cat /proc/sys/kernel/random/uuid > {BOOT_ID_FILE}) >/dev/null 2>&1 &"
#: the service the kvm-ssh driver checks on the peer (up while its run file exists)
SERVICE = "fake-libvirtd"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Peer:
    """A running peer: where it listens and the files a client needs to reach it."""

    root: Path
    address: str
    port: int
    key_file: Path           # the user's private key (root on the peer)
    known_hosts: Path        # the peer's host key, as ``[127.0.0.1]:port``
    other_key: Path          # a host key the peer does NOT have (for the wrong-key test)

    def chroot(self, script: str) -> str:
        """Run ``script`` in the peer's root directly (the test's own view, not over SSH)."""
        return _chroot(self.root, script)

    def reset(self) -> None:
        """Back to the starting point (see :func:`reset_root`)."""
        reset_root(self.root)

    def service_up(self, name: str = SERVICE) -> None:
        """The stand-in service ``name`` reports active from now on."""
        (self.root / "run" / f"hvpatch-test-{name}").touch()

    def installed(self, package: str = PACKAGE) -> str:
        """The installed version of ``package`` as dpkg says, '' when absent."""
        res = subprocess.run(["chroot", str(self.root), "dpkg-query", "-W", "-f=${Version}",
                              package], capture_output=True, text=True, check=False)
        return res.stdout.strip() if res.returncode == 0 else ""


def driver_options(peer: Peer, host: str, **extra: str) -> dict[str, str]:
    """The kvm-ssh connection options that reach ``peer`` as ``host``: its key and host key,
    the test boot id, the stand-in service check; ``extra`` adds or overrides."""
    return {"hosts": f"{host}={peer.address}:{peer.port}", "key_file": str(peer.key_file),
            "known_hosts": str(peer.known_hosts), "packages": PACKAGE,
            "boot_id_command": f"cat {BOOT_ID_FILE}", "services": SERVICE,
            "service_check_command": "test -e /run/hvpatch-test-{service} && echo active "
                                     "|| echo inactive",
            "poll_interval_s": "0.1", **extra}


def _keygen(path: Path) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hvpatch-test", "-f", str(path)])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: "
                               f"{proc.stderr.read().decode()[-1000:] if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def start_peer(work: Path) -> Iterator[Peer]:
    """Build (or reuse) the cached root, copy it for this session, and run sshd for the copy
    until the block ends (each pytest worker has its own copy, so they never share a dpkg
    database; the copy lives under the cache because sshd's ChrootDirectory must not sit below
    a world-writable folder such as /tmp)."""
    cached = ensure_root()
    unsafe = _unsafe_for_chroot(cached.parent)
    if unsafe:
        raise PeerUnavailable(f"sshd cannot chroot below {unsafe}: a folder on the way is not "
                              "owned by root or is writable by others; set HVPATCH_TEST_CACHE "
                              "to a folder whose every parent is root-owned and not "
                              "group- or world-writable")
    _remove_stale_copies(cached.parent)
    copy = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=cached.parent))
    os.chmod(copy, 0o755)
    root = copy / "root"
    _run(["cp", "-a", "--reflink=auto", str(cached), str(root)], timeout=600)
    (root / "proc").mkdir(exist_ok=True)
    _run(["mount", "-t", "proc", "proc", str(root / "proc")])
    proc: subprocess.Popen[bytes] | None = None
    try:
        build_repo(root)
        # copy: rather than file: so that apt downloads into its archive cache as from a
        # remote mirror (with file: it installs in place and --download-only keeps nothing)
        (root / "etc/apt/sources.list").write_text("deb [trusted=yes] copy:/srv/repo ./\n")
        _chroot(root, "apt-get update -q", timeout=180)
        reset_root(root)
        host_key, user_key, other = work / "host_key", work / "user_key", work / "other_host_key"
        for k in (host_key, user_key, other):
            _keygen(k)
        authorized = work / "authorized_keys"
        authorized.write_text(Path(f"{user_key}.pub").read_text())
        port = free_port()
        config = work / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {work / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"ChrootDirectory {root}\nSubsystem sftp internal-sftp\n"
            "MaxSessions 50\nMaxStartups 50\nLogLevel ERROR\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege separation dir
        sshd = _tool("sshd")
        _run([sshd, "-t", "-f", str(config)])
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_listening(port, proc)
        known = work / "known_hosts"
        pub = Path(f"{host_key}.pub").read_text().split()
        known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        yield Peer(root, "127.0.0.1", port, user_key, known, Path(f"{other}.pub"))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _unmount_all(root)
        shutil.rmtree(root.parent, ignore_errors=True)


def _unsafe_for_chroot(path: Path) -> str:
    """The first folder on ``path`` that sshd's ChrootDirectory would refuse, or ""."""
    for folder in [path.resolve(), *path.resolve().parents]:
        st = folder.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            return str(folder)
    return ""


def _remove_stale_copies(cache: Path) -> None:
    """Session copies of sessions that are gone (killed): unmounted and removed."""
    for copy in cache.glob("run-*"):
        try:
            os.kill(int(copy.name.split("-")[1]), 0)
            continue                       # that session still runs
        except (ValueError, IndexError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        _unmount_all(copy)
        shutil.rmtree(copy, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires the SSH peer: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ssh_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """The running peer for the whole session (root built once and cached; a copy of it per
    session). Import it into a test module's namespace to use it."""
    reason = unavailable_reason()
    if reason:
        _unavailable(reason)
    try:
        with start_peer(tmp_path_factory.mktemp("ssh-peer")) as peer:
            yield peer
    except PeerUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture
def peer_up(ssh_peer: Peer) -> Peer:
    """The SSH peer reset to its starting point, with its stand-in libvirtd up."""
    ssh_peer.reset()
    ssh_peer.service_up()
    return ssh_peer
