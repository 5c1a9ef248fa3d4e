"""``hvpatch users`` and ``hvpatch serve`` as a user runs them: passwords and tokens printed once,
bad input exits 2, the first run of the server prints the admin's one-time password once."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hvpatch.adapters.store.db import Store
from hvpatch.adapters.store.models import AuditRow
from hvpatch.cli.errors import exit_code_for
from hvpatch.cli.main import app
from hvpatch.errors import InputError
from hvpatch.services.users import authenticate, bootstrap_admin, verify_token


def hv(*args: str, db: str, home: Path, stdin: str | None = None
       ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "COLUMNS": "200",
           "XDG_DATA_HOME": str(home), "HVPATCH_ACTOR": "root-op"}
    return subprocess.run([sys.executable, "-m", "hvpatch", *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=120, check=False)


def test_users_add_list_token_disable(sqlite_url: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    added = hv("users", "add", "bob", "--role", "approver", db=sqlite_url, home=tmp_path)
    assert added.returncode == 0, added.stderr
    password = re.search(r"one-time password.*: (\S+)", added.stdout)
    assert password and len(password.group(1)) >= 16

    # the rest in-process (the same Typer app, without a new interpreter per command)
    monkeypatch.setenv("HVPATCH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HVPATCH_ACTOR", "root-op")
    runner = CliRunner()
    ci = runner.invoke(app, ["users", "add", "ci", "--role", "operator", "--password-stdin",
                             "-o", "json"], input="a long enough password\n")
    assert ci.exit_code == 0, ci.output
    assert json.loads(ci.stdout)["password"] is None
    # bad input: every problem named (the console entry point maps this to exit code 2)
    bad = runner.invoke(app, ["users", "add", "eve", "--role", "superuser", "--password-stdin"],
                        input="short\n")
    assert isinstance(bad.exception, InputError)
    assert exit_code_for(bad.exception) == 2
    assert {p.location for p in bad.exception.problems} == {"role", "password"}

    token = hv("users", "token", "ci", "--name", "pipeline", "--expires-days", "30",
               db=sqlite_url, home=tmp_path)
    assert token.returncode == 0, token.stderr
    clear = re.search(r"^(hvp_\S+)$", token.stdout, re.M)
    assert clear, token.stdout

    listed = hv("users", "list", "-o", "json", db=sqlite_url, home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    users = json.loads(listed.stdout)
    assert [(u["name"], u["role"], u["must_change"]) for u in users] == [
        ("bob", "approver", True), ("ci", "operator", False)]
    assert "hash" not in listed.stdout and clear.group(1) not in listed.stdout

    disabled = runner.invoke(app, ["users", "disable", "ci"])
    assert disabled.exit_code == 0, disabled.output
    store = Store(sqlite_url)
    assert verify_token(store, clear.group(1)) is None
    with store.session() as s:
        actions = [(r.actor, r.action) for r in s.scalars(select(AuditRow))]
    store.close()
    assert ("root-op", "user.add") in actions and ("root-op", "token.create") in actions
    assert ("root-op", "user.disable") in actions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(db: str, home: Path, port: int) -> tuple[str, int]:
    """Start ``hvpatch serve``, wait until it answers, stop it; its output and exit code."""
    env = {**os.environ, "HVPATCH_DATABASE_URL": db, "XDG_DATA_HOME": str(home),
           "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "hvpatch", "serve", "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("hvpatch serve did not answer")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    return out, proc.returncode


def test_serve_prints_the_first_admin_password_once(sqlite_url: str, tmp_path: Path) -> None:
    out, code = _serve(sqlite_url, tmp_path, _free_port())
    assert code == 0, out
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "first run" in line)
    password = lines[first + 1].strip()
    assert len(password) >= 16 and " " not in password
    store = Store(sqlite_url)
    admin = authenticate(store, "admin", password)
    assert admin is not None and admin.role == "admin" and admin.must_change
    # what the next start does: the admin exists, so no password is made or printed again
    assert bootstrap_admin(store) is None
    store.close()
