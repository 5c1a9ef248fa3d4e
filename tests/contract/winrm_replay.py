"""A WinRM (WS-Management) replay server on 127.0.0.1 over real TLS, for pywinrm's ``run_ps``.

It answers the SOAP exchange pywinrm 0.5 sends (``winrm/protocol.py``), its answers modelled on
the Windows WinRM responses in pywinrm's test fixtures (not captured from a Windows host), with
Basic authentication (``Authorization: Basic``, 401 otherwise):

* ``transfer/Create`` (resource ``.../windows/shell/cmd``) -> ``x:ResourceCreated`` with a
  ``ShellId`` selector;
* ``shell/Command`` -> ``rsp:CommandResponse`` with a ``CommandId``; the command must be
  ``powershell -encodedcommand <base64 of the UTF-16LE script>``, and the decoded script picks
  the recorded output to print (an unknown script prints an error on stderr, exit code 1, as
  PowerShell would for a script that fails);
* ``shell/Receive`` -> ``rsp:ReceiveResponse``: base64 ``stdout`` chunks, ``CommandState``
  ``.../Running`` until the last chunk, then ``End`` streams and ``.../Done`` with the
  ``ExitCode`` (so pywinrm has to call Receive several times);
* ``shell/Signal`` (terminate) -> ``rsp:SignalResponse``; ``transfer/Delete`` -> empty body;
  both with ``a:RelatesTo`` = the request's ``MessageID`` (pywinrm asserts it);
* an unknown ``ShellId``/``CommandId`` -> a ``s:Fault`` (HTTP 500) with a ``wsmanfault`` code.

Every exchange is recorded as :class:`Exchange` (action, shell, command, script key).
"""

from __future__ import annotations

import base64
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from replay_server import serve_loopback, stop_serving

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ACTIONS = {f"{TRANSFER}/Create": "Create", f"{TRANSFER}/Delete": "Delete",
           f"{SHELL}/Command": "Command", f"{SHELL}/Receive": "Receive",
           f"{SHELL}/Signal": "Signal"}
_ENVELOPE = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" '
    'xmlns:rsp="{rsp}" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>{{action}}</a:Action><a:MessageID>uuid:{{message_id}}</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>{{relates_to}}</a:RelatesTo></s:Header><s:Body>{{body}}</s:Body></s:Envelope>"
).format(x=TRANSFER, **NS)

#: the wsmanfault code Windows gives an unknown ShellId (0x8033805B), used for any unknown id
NOT_FOUND = 2150858843


@dataclass(frozen=True)
class Exchange:
    """One SOAP request as the server saw it."""

    action: str              # Create, Command, Receive, Signal, Delete (or the full URI)
    shell_id: str = ""
    command_id: str = ""
    script: str = ""         # for Command: the key of the recorded output ("" if unknown)


@dataclass
class _Command:
    chunks: list[bytes]
    stderr: bytes
    exit_code: int


@dataclass
class WinRmReplay:
    """The server; ``scripts`` maps a decoded script to what it prints, ``keys`` names them."""

    cert: Path
    key: Path
    username: str
    password: str
    scripts: Mapping[str, bytes]          # script text -> recorded stdout
    keys: Mapping[str, str] = field(default_factory=dict)   # script text -> name in the log
    chunk: int = 700                      # stdout bytes per Receive
    exchanges: list[Exchange] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    _shells: dict[str, dict[str, _Command]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>/wsman``."""
        assert self._httpd is not None, "server not started"
        return f"https://127.0.0.1:{self._httpd.server_address[1]}/wsman"

    @property
    def open_shells(self) -> int:
        """Shells created and not deleted."""
        return len(self._shells)

    def __enter__(self) -> WinRmReplay:
        self._httpd, self._thread = serve_loopback(_handler(self), tls=(self.cert, self.key))
        return self

    def __exit__(self, *exc: object) -> None:
        stop_serving(self._httpd, self._thread)

    # --- WS-Management ---------------------------------------------------------------------

    def authorized(self, header: str) -> bool:
        self.auth_headers.append(header)
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (user, password) == (self.username, self.password)

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and SOAP envelope answering one request."""
        root = ET.fromstring(body)
        header = root.find("s:Header", NS)
        action_uri = _text(header, "a:Action")
        message_id = _text(header, "a:MessageID")
        shell_id = next((s.text or "" for s in root.iterfind(".//w:Selector", NS)
                         if s.get("Name") == "ShellId"), "")
        action = ACTIONS.get(action_uri, action_uri)
        with self._lock:
            if action == "Create":
                shell_id = str(uuid.uuid4()).upper()
                self._shells[shell_id] = {}
                self.exchanges.append(Exchange(action, shell_id))
                return 200, _reply(f"{TRANSFER}/CreateResponse", message_id, (
                    "<x:ResourceCreated><a:Address>http://127.0.0.1:5985/wsman</a:Address>"
                    "<a:ReferenceParameters><w:ResourceURI>"
                    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
                    "</w:ResourceURI><w:SelectorSet>"
                    f'<w:Selector Name="ShellId">{shell_id}</w:Selector>'
                    "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                    f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>"
                    "<rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
                    "</rsp:ResourceUri><rsp:InputStreams>stdin</rsp:InputStreams>"
                    "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"))
            shell = self._shells.get(shell_id)
            if shell is None:
                self.exchanges.append(Exchange(action, shell_id))
                return _fault(message_id, NOT_FOUND, "The request for the Windows Remote "
                              "Shell with ShellId " + shell_id + " failed because the shell "
                              "was not found on the server.")
            if action == "Command":
                return self._command(shell, shell_id, message_id,
                                     _text(root, "s:Body/rsp:CommandLine/rsp:Command"))
            if action == "Delete":
                del self._shells[shell_id]
                self.exchanges.append(Exchange(action, shell_id))
                return 200, _reply(f"{TRANSFER}/DeleteResponse", message_id, "")
            if action in ("Receive", "Signal"):
                node = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
                if node is None:
                    node = root.find("s:Body/rsp:Signal", NS)
                command_id = node.get("CommandId", "") if node is not None else ""
                command = shell.get(command_id)
                self.exchanges.append(Exchange(action, shell_id, command_id))
                if command is None:
                    return _fault(message_id, NOT_FOUND, f"No command {command_id} in the shell.")
                if action == "Signal":
                    del shell[command_id]
                    return 200, _reply(f"{SHELL}/SignalResponse", message_id,
                                       "<rsp:SignalResponse/>")
                return 200, _reply(f"{SHELL}/ReceiveResponse", message_id,
                                   _receive(command_id, command))
            self.exchanges.append(Exchange(action, shell_id))
            return _fault(message_id, NOT_FOUND, f"The action {action_uri} is not supported.")

    def _command(self, shell: dict[str, _Command], shell_id: str, message_id: str,
                 command_line: str) -> tuple[int, bytes]:
        command_id = str(uuid.uuid4()).upper()
        prefix = "powershell -encodedcommand "
        script = ""
        if command_line.lower().startswith(prefix):
            script = base64.b64decode(command_line[len(prefix):]).decode("utf-16-le")
        out = self.scripts.get(script)
        key = self.keys.get(script, "") if out is not None else ""
        if out is None:      # what a failing script leaves: CLIXML on stderr, exit code 1
            err = (b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com"
                   b"/powershell/2004/04\"><S S=\"Error\">replay: no recorded output for this "
                   b"script_x000D__x000A_</S></Objs>")
            shell[command_id] = _Command([], err, 1)
        else:                # PowerShell prints CRLF line ends
            text = out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            chunks = [text[i:i + self.chunk] for i in range(0, len(text), self.chunk)]
            shell[command_id] = _Command(chunks, b"", 0)
        self.exchanges.append(Exchange("Command", shell_id, command_id, key))
        return 200, _reply(f"{SHELL}/CommandResponse", message_id,
                           f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                           "</rsp:CommandResponse>")


def _text(node: ET.Element | None, path: str) -> str:
    found = node.find(path, NS) if node is not None else None
    return (found.text or "").strip() if found is not None else ""


def _reply(action: str, relates_to: str, body: str) -> bytes:
    return _ENVELOPE.format(action=action, message_id=str(uuid.uuid4()).upper(),
                            relates_to=relates_to, body=body).encode("utf-8")


def _receive(command_id: str, command: _Command) -> str:
    def stream(name: str, data: bytes) -> str:
        return (f'<rsp:Stream Name="{name}" CommandId="{command_id}">'
                f"{base64.b64encode(data).decode()}</rsp:Stream>")

    parts = []
    if command.chunks:
        parts.append(stream("stdout", command.chunks.pop(0)))
    if command.chunks:
        state = "Running"
    else:
        if command.stderr:
            parts.append(stream("stderr", command.stderr))
            command.stderr = b""
        parts.append(f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"/>'
                     f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"/>')
        state = "Done"
    exit_code = f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode>" if state == "Done" else ""
    parts.append(f'<rsp:CommandState CommandId="{command_id}" '
                 f'State="{SHELL}/CommandState/{state}">{exit_code}</rsp:CommandState>')
    return "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"


def _fault(relates_to: str, code: int, message: str) -> tuple[int, bytes]:
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode>"
        "<s:Value>w:InternalError</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(message)}</s:Text></s:Reason>'
        '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"'
        f' Code="{code}" Machine="127.0.0.1"><f:Message>{escape(message)}</f:Message>'
        "</f:WSManFault></s:Detail></s:Fault>")
    return 500, _reply("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def _handler(server: WinRmReplay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/wsman":
                self._send(404, b"")
            elif not server.authorized(self.headers.get("Authorization", "")):
                self._send(401, b"", {"WWW-Authenticate": 'Basic realm="WSMAN"'})
            elif not self.headers.get("Content-Type", "").startswith("application/soap+xml"):
                self._send(415, b"")
            else:
                self._send(*server.answer(body))

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None
                  ) -> None:
            self.send_response(status)
            self.send_header("Server", "Microsoft-HTTPAPI/2.0")
            if body:
                self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
