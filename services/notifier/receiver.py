"""`lxc-autoscale notify-receiver`: a small webhook receiver that prints what the
notifier sends (for the demo and for trying a configuration). With `--secret` (or
LXC_AUTOSCALE_WEBHOOK_SECRET) it checks each signature and answers 401 to a bad one."""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.notifier.payloads import signature
from shared.validation import sanitize

MAX_BODY = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8099, help="listen port (default: %(default)s)")
    parser.add_argument(
        "--secret", default=os.environ.get("LXC_AUTOSCALE_WEBHOOK_SECRET"),
        help="check X-Autoscale-Signature with this key (default: $LXC_AUTOSCALE_WEBHOOK_SECRET)",
    )  # fmt: skip
    parser.add_argument("--header", default="X-Autoscale-Signature", help="signature header name")


def verdict(body: bytes, given: str | None, secret: str | None) -> str:
    """`unsigned`, `valid` or `INVALID` (pure, for the handler and its test)."""
    if not secret:
        return "unsigned" if not given else "not checked"
    return "valid" if given and hmac.compare_digest(given, signature(secret, body)) else "INVALID"


def _handler(secret: str | None, header: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            body = self.rfile.read(length)
            check = verdict(body, self.headers.get(header), secret)
            try:
                payload: dict[str, Any] = json.loads(body)
                title = str(payload.get("title", ""))
            except ValueError:
                title = "<not JSON>"
            print(f"notify-receiver: [{check}] {sanitize(title, 300)}", flush=True)
            self.send_response(401 if check == "INVALID" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def run(args: argparse.Namespace) -> int:
    server = ThreadingHTTPServer((args.host, args.port), _handler(args.secret, args.header))
    print(f"notify-receiver: listening on http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.flush()
    return 0
