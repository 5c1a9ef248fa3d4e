"""govmomi's vCenter simulator (vcsim) as a real peer for the vSphere connector's tests.

``tests/peers/vcsim/main.go`` is built once, offline, from Debian's govmomi sources
(golang-go and golang-github-vmware-govmomi-dev; ``scripts/install-test-packages.sh``) into
``.cache/vcsim/`` keyed on a hash of the source and the Go version, then started on a free port
of 127.0.0.1 with TLS. Without Go or the sources the tests skip with the reason; under
``CI=true`` they fail instead. ``VCSIM_GOPATH`` overrides where govmomi's sources are looked for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "tests" / "peers" / "vcsim" / "main.go"
CACHE = REPO / ".cache" / "vcsim"
#: where Debian's golang-*-dev packages put Go sources (a GOPATH)
DEBIAN_GOPATH = Path("/usr/share/gocode")
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class VcsimPeer:
    """A running simulator: where it is, the one login it accepts, and its certificate."""

    url: str
    username: str
    password: str = field(repr=False)
    ca_file: str
    #: the install hook of a peer started with ``-patch-hook`` (see main.go), else empty
    hook_url: str = ""


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires the vCenter simulator: {reason}")
    pytest.skip(reason)


def _gopath() -> Path:
    return Path(os.environ.get("VCSIM_GOPATH", str(DEBIAN_GOPATH)))


def build_vcsim() -> Path:
    """The simulator binary, built if the cache has none for this source and Go version."""
    go = shutil.which("go")
    if go is None:
        _unavailable("Go is not installed (Debian: apt-get install golang-go)")
        raise AssertionError("unreachable")
    gopath = _gopath()
    if not (gopath / "src" / "github.com" / "vmware" / "govmomi" / "simulator").is_dir():
        _unavailable(f"govmomi's sources are not in {gopath} (Debian: apt-get install "
                     "golang-github-vmware-govmomi-dev, or set VCSIM_GOPATH)")
    version = subprocess.run([go, "version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode()).hexdigest()[:16]
    binary = CACHE / f"vcsim-peer-{key}"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:   # pytest workers wait for one build
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        return _build(go, gopath, binary)


def _build(go: str, gopath: Path, binary: Path) -> Path:
    partial = CACHE / f".{binary.name}.{os.getpid()}"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(gopath), "GOFLAGS": "",
           "GOCACHE": str(CACHE / "gocache")}
    done = subprocess.run([go, "build", "-o", str(partial), str(SOURCE)], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"building the vCenter simulator failed:\n{done.stderr[-3000:]}")
    partial.replace(binary)   # atomic: a concurrent run sees a whole binary or none
    return binary


def start_vcsim(binary: Path, workdir: Path, *args: str
                ) -> tuple[subprocess.Popen[str], VcsimPeer]:
    """Start the simulator (with extra command-line ``args``, e.g. ``-patch-hook``) and wait
    for the line that says where it listens."""
    password = secrets.token_urlsafe(12)
    ca_file = workdir / "vcsim-ca.pem"
    log = (workdir / "vcsim.log").open("w")
    proc = subprocess.Popen([str(binary), "-password", password, "-cert", str(ca_file), *args],
                            stdout=subprocess.PIPE, stderr=log, text=True, cwd=workdir)
    log.close()
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()  # type: ignore
                                                          ), daemon=True)
    reader.start()
    reader.join(60)
    if not lines or not lines[0].strip():
        proc.kill()
        proc.wait()
        pytest.fail("the vCenter simulator did not start: "
                    + (workdir / "vcsim.log").read_text()[-2000:])
    info = json.loads(lines[0])
    return proc, VcsimPeer(info["url"], info["username"], info["password"], info["ca_file"],
                           info.get("hook_url", ""))


def stop_vcsim(proc: subprocess.Popen[str]) -> None:
    """Stop a simulator :func:`start_vcsim` started."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def vcsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsimPeer]:
    """One simulator for the test session (the tests put it back as they found it)."""
    binary = build_vcsim()
    proc, peer = start_vcsim(binary, tmp_path_factory.mktemp("vcsim"))
    try:
        yield peer
    finally:
        stop_vcsim(proc)
