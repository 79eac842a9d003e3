"""Real local endpoints for the notifier tests, all on 127.0.0.1 and free ports:
an HTTP server standing in for Gotify, Uptime Kuma and a webhook receiver, and an
SMTP server (aiosmtpd) with STARTTLS or implicit TLS and a login, using a CA and a
certificate for 127.0.0.1 made in the test's tmp dir."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from shared.embedded_broker import free_port
from simnode.tls import make_tls_files


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpEndpoint:
    """Records every request; `stop()` makes it really down (connection refused)."""

    def __init__(self, status: int = 200) -> None:
        self.port = free_port()
        self.status = status
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                received = Received(
                    method=self.command,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                with endpoint._lock:
                    endpoint.requests.append(received)
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: keeps each message with the user that logged in to send it."""

    user: str
    password: str
    messages: list[tuple[str | None, EmailMessage]] = field(default_factory=list)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and (data.password.decode() == self.password)
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((session.auth_data, message))
        return "250 OK"


class _Controller(Controller):
    def factory(self) -> Any:
        # aiosmtpd warns about AUTH without STARTTLS on each connection, even over implicit TLS.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


class SmtpEndpoint:
    def __init__(self, tmp: Path, *, security: str, user: str, password: str) -> None:
        import ssl

        tls = make_tls_files(tmp / "smtp-tls")
        self.ca_file = tls.ca_path
        self.security = security
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_path, tls.key_path)
        self.recorder = SmtpRecorder(user, password)
        self.port = free_port()
        options: dict[str, Any] = {"authenticator": self.recorder.authenticate, "auth_required": True}
        if security == "ssl":
            # aiosmtpd does not see implicit TLS as TLS for AUTH; the socket is TLS all the same.
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
        self.controller = _Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    @property
    def messages(self) -> list[tuple[str | None, EmailMessage]]:
        return self.recorder.messages

    def stop(self) -> None:
        self.controller.stop()


async def eventually(condition: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    """Wait (without blocking the event loop the notifier runs in) until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
