"""Structured logging: JSON lines for machines, a readable mode for terminals.

Outside text is sanitized (no control characters smuggled into a line) and
secrets are masked before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from shared.validation import sanitize

_SECRET_PATTERNS = [
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|apikey|seed)(\s*[=:]\s*)\S+"),
    re.compile(r"(?i)\bBearer\s+\S+"),
    re.compile(r"\bSU[A-Z2-7]{50,}\b"),  # nkey seeds
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]
_SECRET_FIELDS = re.compile(r"(?i)(password|passwd|secret|token|seed|api_?key|creds)")
REDACTED = "***REDACTED***"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def mask_secrets(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) + m.group(2) + REDACTED) if m.lastindex else REDACTED, text
        )
    return text


def _clean(key: str, value: Any) -> Any:
    if _SECRET_FIELDS.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return mask_secrets(sanitize(value, limit=2000))
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(key, v) for v in value]
    return mask_secrets(sanitize(str(value), limit=2000))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _clean(k, v) for k, v in vars(record).items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "msg": mask_secrets(sanitize(record.getMessage(), limit=4000)),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = mask_secrets(sanitize(self.formatException(record.exc_info), 4000))
        return json.dumps(entry, default=str)


class HumanFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {self.service}: "
        line += mask_secrets(sanitize(record.getMessage(), limit=4000))
        return f"{line} {extras}".rstrip()


def setup_logging(service: str, *, json_lines: bool | None = None, level: str = "INFO") -> None:
    """Configure the root logger once per process. JSON unless stderr is a terminal."""
    use_json = (not sys.stderr.isatty()) if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if use_json else HumanFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and a notification URL can hold a token.
    for noisy in ("paramiko", "nats", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
