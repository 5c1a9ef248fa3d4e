"""``hvpatch secrets`` as a user runs it: a value piped in is stored encrypted, listed without
its value, used by a connection as ``secret:NAME``, and never printed, stored in clear or
written to the audit log; bad input changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow, SecretRow
from hvpatch.services.connections import resolve_endpoint

NODE = Path(__file__).parents[1] / "contract" / "data" / "libvirt" / "node.xml"
VALUE = "Vc-Passw0rd-with spaces\tand tabs"


def hv(*args: str, db: str, home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "ops-alice",
           "HVPATCH_SECRET_KEY_FILE": str(home / "secret.key")}
    env.pop("HVPATCH_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=120, check=False)


def test_put_list_use_delete(sqlite_url: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    put = hv("secrets", "put", "vc1", "--kind", "password", db=sqlite_url, home=tmp_path,
             stdin=VALUE + "\n")
    assert put.returncode == 0, put.stderr
    assert "secret:vc1" in put.stdout and VALUE not in put.stdout + put.stderr
    listed = hv("secrets", "list", "-o", "json", db=sqlite_url, home=tmp_path)
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["kind"]) for r in rows] == [("vc1", "password")]
    assert VALUE not in listed.stdout

    added = hv("connect", "add", "lab", "--kind", "libvirt", "--url",
               f"test://{NODE.resolve()}", "--user", "root", "--credential", "secret:vc1",
               db=sqlite_url, home=tmp_path)
    assert added.returncode == 0, added.stderr
    store = Store(sqlite_url)
    monkeypatch.delenv("HVPATCH_SECRET_KEY", raising=False)
    monkeypatch.setenv("HVPATCH_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    assert resolve_endpoint(store, "lab").password == VALUE   # the newline was dropped
    with store.session() as s:
        stored = s.scalar(select(SecretRow.ciphertext))
        audit = " ".join(f"{a} {d}" for a, d in s.execute(select(AuditRow.action,
                                                                 AuditRow.details)))
    assert stored and VALUE not in stored and VALUE not in audit
    assert "secret.add" in audit

    empty = hv("secrets", "put", "vc2", db=sqlite_url, home=tmp_path, stdin="")
    bad_kind = hv("secrets", "put", "vc2", "--kind", "pin", db=sqlite_url, home=tmp_path,
                  stdin="x")
    assert (empty.returncode, bad_kind.returncode) == (2, 2)
    assert "stdin" in empty.stderr and "kind" in bad_kind.stderr
    assert hv("secrets", "delete", "vc1", db=sqlite_url, home=tmp_path).returncode == 0
    assert json.loads(hv("secrets", "list", "-o", "json", db=sqlite_url,
                         home=tmp_path).stdout) == []
    assert hv("secrets", "delete", "vc1", db=sqlite_url, home=tmp_path).returncode != 0
    store.close()
