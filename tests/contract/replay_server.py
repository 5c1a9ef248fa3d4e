"""A real HTTP server on 127.0.0.1 (ephemeral port) that replays recorded answers to clients.

Stdlib only (``http.server`` in a background thread). It

* serves routes by path, each a fixed :class:`Reply` or a function of the request (so a route
  can page through records by ``startIndex`` or answer ``304`` to a matching ``If-None-Match``);
* can be scripted with faults: "answer 429 with ``Retry-After: 7`` the next 2 times", "answer 503
  to ``startIndex=8`` until cleared" (a failure in the middle of a sync), or drop the connection;
* records every request (method, path, query, headers) for assertions.

Use it as a context manager::

    with ReplayServer() as server:
        server.route("/rest/json/cves/2.0", NvdEmulator(records))
        server.fail("/rest/json/cves/2.0", Reply(503), times=2)
        ... client requests server.url + "/rest/json/cves/2.0" ...
        assert len(server.requests) == 3
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NVD_PATH = "/rest/json/cves/2.0"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class Reply:
    """An answer to send; ``drop`` closes the connection without answering."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, doc: Any, status: int = 200, **headers: str) -> Reply:
        """A JSON answer."""
        body = json.dumps(doc).encode()
        return cls(status, body, {"Content-Type": "application/json", **headers})


Responder = Reply | Callable[[RecordedRequest], Reply]


@dataclass
class _Fault:
    path: str
    query: Mapping[str, str]
    reply: Reply
    remaining: int | None  # None: until cleared

    def matches(self, request: RecordedRequest) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and request.path == self.path
            and all(request.query.get(k) == v for k, v in self.query.items())
        )


class ReplayServer:
    """The server; start and stop it with ``with``."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls   # (certificate, key): serve HTTPS
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Responder] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting -----------------------------------------------------------------------------

    def route(self, path: str, responder: Responder) -> None:
        """Answer requests for ``path`` with ``responder``."""
        with self._lock:
            self._routes[path] = responder

    def fail(
        self,
        path: str,
        reply: Reply,
        *,
        times: int | None = 1,
        query: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``reply`` instead of the route, ``times`` times (None: until cleared), to the
        requests for ``path`` whose query contains ``query``."""
        with self._lock:
            self._faults.append(_Fault(path, dict(query or {}), reply, times))

    def clear_faults(self) -> None:
        """Forget every scripted fault."""
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with ``tls``)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def __enter__(self) -> ReplayServer:
        self._httpd, self._thread = serve_loopback(_make_handler(self), tls=self.tls)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_serving(self._httpd, self._thread)

    # --- dispatch ------------------------------------------------------------------------------

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.matches(request):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.reply
            responder = self._routes.get(request.path)
        if responder is None:
            return Reply.json({"message": f"no route {request.path}"}, status=404)
        return responder(request) if callable(responder) else responder


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = RecordedRequest(
                method="GET",
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            reply = server._answer(request)
            if reply.drop:
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status != 304:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.status != 304:
                self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    return Handler


# --- ready-made responders ---------------------------------------------------------------------


def _nvd_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class NvdEmulator:
    """Answers NVD CVE API 2.0 queries from a list of ``cve`` objects, like the real service:
    ``lastModStartDate``/``lastModEndDate`` filter on ``lastModified`` (both bounds included,
    120 days at most), ``startIndex``/``resultsPerPage`` page the result (2000 at most)."""

    def __init__(self, records: Sequence[Mapping[str, Any]], timestamp: str) -> None:
        self.records = list(records)
        self.timestamp = timestamp

    def __call__(self, request: RecordedRequest) -> Reply:
        q = request.query
        try:
            start_index = int(q.get("startIndex", "0"))
            per_page = int(q.get("resultsPerPage", "2000"))
            selected = self.records
            if "lastModStartDate" in q or "lastModEndDate" in q:
                lo, hi = _nvd_time(q["lastModStartDate"]), _nvd_time(q["lastModEndDate"])
                if (hi - lo).days > 120:
                    raise ValueError("range over 120 days")
                selected = [r for r in selected if lo <= _nvd_time(r["lastModified"]) <= hi]
        except (KeyError, ValueError) as exc:
            return Reply(404, b"", {"message": f"Invalid parameters: {exc}"})
        if not 1 <= per_page <= 2000 or start_index < 0:
            return Reply(404, b"", {"message": "Invalid resultsPerPage or startIndex"})
        page = selected[start_index : start_index + per_page]
        return Reply.json(nvd_envelope(page, start_index, len(selected), self.timestamp))


def nvd_envelope(
    records: Sequence[Mapping[str, Any]], start_index: int, total: int, timestamp: str
) -> dict[str, Any]:
    """An NVD CVE API 2.0 answer page around ``records``."""
    return {
        "resultsPerPage": len(records),
        "startIndex": start_index,
        "totalResults": total,
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": timestamp,
        "vulnerabilities": [{"cve": r} for r in records],
    }


def pages_by_start_index(pages: Sequence[bytes]) -> Callable[[RecordedRequest], Reply]:
    """Serve recorded NVD pages as they are, chosen by the ``startIndex`` they carry."""
    by_index = {json.loads(p)["startIndex"]: p for p in pages}

    def respond(request: RecordedRequest) -> Reply:
        body = by_index.get(int(request.query.get("startIndex", "0")))
        if body is None:
            return Reply(404, b"", {"message": "no recorded page for this startIndex"})
        return Reply(200, body, {"Content-Type": "application/json"})

    return respond


def conditional_file(
    body: bytes,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    content_type: str = "application/octet-stream",
) -> Callable[[RecordedRequest], Reply]:
    """Serve ``body`` like a static file server: 304 when the client's validators match."""
    headers = {"Content-Type": content_type}
    if etag:
        headers["ETag"] = etag
    if last_modified:
        headers["Last-Modified"] = last_modified

    def respond(request: RecordedRequest) -> Reply:
        inm, ims = request.headers.get("if-none-match"), request.headers.get("if-modified-since")
        if (etag and inm == etag) or (not inm and last_modified and ims == last_modified):
            return Reply(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
        return Reply(200, body, headers)

    return respond


def serve_loopback(handler: type[BaseHTTPRequestHandler], *,
                   tls: tuple[Path, Path] | None = None
                   ) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """``handler`` served on a free 127.0.0.1 port in a daemon thread; over TLS with
    ``tls = (certificate, key)``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    return httpd, thread


def stop_serving(httpd: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop what :func:`serve_loopback` started (either may be None: not started)."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)


def make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: x509.Name | None, signer: Any, public: Any,
              ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                  critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("hvpatch test CA", None, ca_key, ca_key.public_key(), True)
    cert = build("127.0.0.1", ca.subject, ca_key, key.public_key(), False)
    paths = tmp / "test-ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
