"""``hvpatch connect`` and ``hvpatch inventory sync`` as a user runs them, end to end on libvirt's
test driver (tests/contract/data/libvirt/node.xml): add, test, sync, list, remove; credentials
from the environment and from a 0600 file; a 0644 file refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, ConnectionRow
from hvpatch.services.connections import resolve_endpoint

pytest.importorskip("libvirt") if os.environ.get("CI", "").lower() != "true" else None

NODE = Path(__file__).parents[1] / "contract" / "data" / "libvirt" / "node.xml"
URI = f"test://{NODE.resolve()}"
SECRET = "s3cr3t-Credential-Value"


def hv(*args: str, db: str, home: Path, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
            "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "ops-alice", **(env or {})}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=full, timeout=120, check=False)


def test_add_test_sync_list_remove(sqlite_url: str, tmp_path: Path) -> None:
    added = hv("connect", "add", "kvm-lab", "--kind", "libvirt", "--url", URI,
               "--option", "hostname=kvm1", "--option", "site=fra1", "--option", "ring=test",
               db=sqlite_url, home=tmp_path)
    assert added.returncode == 0, added.stderr
    tested = hv("connect", "test", "kvm-lab", db=sqlite_url, home=tmp_path)
    assert tested.returncode == 0, tested.stderr
    assert "1 hosts, 6 guests, 3 tenants" in tested.stdout
    empty = hv("inventory", "list", "-o", "json", db=sqlite_url, home=tmp_path)
    assert json.loads(empty.stdout) == []                       # test changed nothing

    dry = hv("inventory", "sync", "kvm-lab", "--dry-run", "-o", "json", db=sqlite_url,
             home=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["added"]["guests"] == 6
    synced = hv("inventory", "sync", "kvm-lab", "-o", "json", db=sqlite_url, home=tmp_path)
    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)
    assert (result["added"]["hosts"], result["added"]["guests"], result["dry_run"]) == (
        1, 6, False)
    again = hv("inventory", "sync", "kvm-lab", db=sqlite_url, home=tmp_path)
    assert "Nothing changed" in again.stdout

    listed = json.loads(hv("inventory", "list", "-o", "json", db=sqlite_url,
                           home=tmp_path).stdout)
    assert [(h["name"], h["site"], h["family"], h["ring"], h["guests"], h["tenants"])
            for h in listed] == [("kvm1", "fra1", "kvm", "test", 6, 3)]
    shown = json.loads(hv("inventory", "show", "kvm1", "-o", "json", db=sqlite_url,
                          home=tmp_path).stdout)
    blocks = {g["name"]: g["migration_block"] for g in shown["guests"]}
    assert blocks["globex-gpu-01"] == "pci-passthrough" and blocks["acme-web-01"] is None
    conns = json.loads(hv("connect", "list", "-o", "json", db=sqlite_url,
                          home=tmp_path).stdout)
    assert conns[0]["last_status"] == "ok: 1 hosts, 6 guests" and conns[0]["last_sync"]

    removed = hv("connect", "remove", "kvm-lab", db=sqlite_url, home=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(hv("connect", "list", "-o", "json", db=sqlite_url,
                         home=tmp_path).stdout) == []
    store = Store(sqlite_url)
    with store.session() as s:
        actions = [(r.actor, r.action) for r in s.scalars(select(AuditRow))]
    store.close()
    assert [a for a in actions if a[1].startswith("connection.")] == [
        ("ops-alice", "connection.add"), ("ops-alice", "connection.sync"),
        ("ops-alice", "connection.sync"), ("ops-alice", "connection.remove")]


def test_credentials_from_env_and_file_and_a_readable_file_refused(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_add = hv("connect", "add", "from-env", "--kind", "libvirt", "--url", URI,
                 "--user", "ops", "--credential", "env:KVM_PASSWORD", db=sqlite_url,
                 home=tmp_path)
    assert env_add.returncode == 0, env_add.stderr
    missing = hv("inventory", "sync", "from-env", db=sqlite_url, home=tmp_path)
    assert missing.returncode == 2 and "KVM_PASSWORD is not set" in missing.stderr
    ok = hv("connect", "test", "from-env", db=sqlite_url, home=tmp_path,
            env={"KVM_PASSWORD": SECRET, "PYTHONWARNINGS": "ignore"})
    assert ok.returncode == 0, ok.stderr

    good = tmp_path / "kvm.pw"
    good.write_text(SECRET + "\n")
    good.chmod(0o600)
    file_add = hv("connect", "add", "from-file", "--kind", "libvirt", "--url", URI,
                  "--credential", f"file:{good}", db=sqlite_url, home=tmp_path)
    assert file_add.returncode == 0, file_add.stderr
    monkeypatch.setenv("KVM_PASSWORD", SECRET)
    store = Store(sqlite_url)
    assert resolve_endpoint(store, "from-file").password == SECRET
    assert resolve_endpoint(store, "from-env").password == SECRET
    assert SECRET not in repr(resolve_endpoint(store, "from-file"))

    bad = tmp_path / "open.pw"
    bad.write_text(SECRET)
    bad.chmod(0o644)
    refused = hv("connect", "add", "from-bad-file", "--kind", "libvirt", "--url", URI,
                 "--credential", f"file:{bad}", "--kind", "libvirt", db=sqlite_url,
                 home=tmp_path)
    assert refused.returncode == 2
    assert "credential:" in refused.stderr and "mode 644" in refused.stderr
    good.chmod(0o640)                        # loosened after it was added: refused at use
    loosened = hv("inventory", "sync", "from-file", db=sqlite_url, home=tmp_path)
    assert loosened.returncode == 2 and "chmod 600" in loosened.stderr
    with store.session() as s:
        names = list(s.scalars(select(ConnectionRow.name).order_by(ConnectionRow.name)))
        audit = " ".join(json.dumps(r.details) + r.subject for r in s.scalars(select(AuditRow)))
    store.close()
    assert names == ["from-env", "from-file"]
    assert SECRET not in audit
    for out in (env_add, missing, ok, file_add, refused, loosened):
        assert SECRET not in out.stdout + out.stderr


def test_bad_input_names_the_fields_and_stores_nothing(sqlite_url: str, tmp_path: Path) -> None:
    bad = hv("connect", "add", "bad name!", "--kind", "proxmox", "--url", "http://pve1:8006",
             "--credential", "vault:x", "--option", "Bad Key=1", db=sqlite_url, home=tmp_path)
    assert bad.returncode == 2
    for field in ("name:", "url:", "credential:", "options.Bad Key:"):
        assert field in bad.stderr, bad.stderr
    unknown = hv("connect", "add", "x", "--kind", "libvirt", "--url", "foo:///x",
                 db=sqlite_url, home=tmp_path)
    assert unknown.returncode == 2 and "qemu+ssh://" in unknown.stderr
    insecure = hv("connect", "add", "pve", "--kind", "proxmox", "--url", "https://pve1:8006",
                  "--insecure", db=sqlite_url, home=tmp_path)
    assert insecure.returncode == 0 and "verification is OFF" in insecure.stderr
    gone = hv("inventory", "sync", "nope", db=sqlite_url, home=tmp_path)
    assert gone.returncode == 2 and "no connection named 'nope'" in gone.stderr
    listed = json.loads(hv("connect", "list", "-o", "json", db=sqlite_url,
                           home=tmp_path).stdout)
    assert [c["name"] for c in listed] == ["pve"]


def test_sync_without_a_name_reads_every_inventory_connection(sqlite_url: str,
                                                              tmp_path: Path) -> None:
    for name, url in (("lab-a", URI), ("lab-b", "test:///default"),
                      ("broken", f"test://{tmp_path / 'missing.xml'}")):
        added = hv("connect", "add", name, "--kind", "libvirt", "--url", url,
                   "--option", f"site={name}", "--option", f"hostname={name}-h1",
                   db=sqlite_url, home=tmp_path)
        assert added.returncode == 0, added.stderr
    both = hv("inventory", "sync", "-o", "json", db=sqlite_url, home=tmp_path)
    results = {r["name"]: r for r in json.loads(both.stdout)}
    assert both.returncode != 0 and "error" in results["broken"]        # reported, not fatal
    assert results["lab-a"]["added"]["hosts"] == results["lab-b"]["added"]["hosts"] == 1
    listed = json.loads(hv("inventory", "list", "-o", "json", db=sqlite_url,
                           home=tmp_path).stdout)
    assert {h["site"] for h in listed} == {"lab-a", "lab-b"}
