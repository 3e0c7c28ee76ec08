"""Process logging: JSON lines in prod, readable lines in dev, secrets redacted, context on.

`configure_logging(settings)` is called once by each process's entry point (`uds serve`,
`uds up`, `uds worker`, the server factory), never by library code or the test suite's
in-process servers. It installs one handler on the root logger; uvicorn's loggers are
routed to it too, so access lines are formatted and carry the request id as well.

Every line carries the current request or job (uds.observability.activity): request id,
tenant, subject, operation and job id. JSON lines always have these keys (null when not
known); readable lines show the ones that are known. Each formatted line then goes
through uds.observability.redact, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from uds.observability.activity import current
from uds.observability.redact import redact
from uds.settings import Settings

CONTEXT_FIELDS = ("request_id", "tenant", "subject", "operation", "job_id")
_HANDLER_NAME = "uds"
# uvicorn's own loggers keep their handlers unless told otherwise; route them to the root.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Chatty at INFO about nothing an operator needs (alembic lists its plugins on import; the
# websockets library says "connection open/closed" for every WebSocket, uds.api.wsframes).
_QUIET = ("alembic.runtime.plugins", "websockets.server")


def context_fields() -> dict[str, str | None]:
    """The current request's or job's fields, all None outside of one."""
    activity = current()
    if activity is None:
        return dict.fromkeys(CONTEXT_FIELDS)
    operation = activity.operation
    if operation == "":
        operation = "anonymous"
    return {
        "request_id": activity.request_id or None,
        "tenant": activity.tenant_slug(),
        "subject": activity.subject_name(),
        "operation": operation,
        "job_id": activity.job_id,
    }


def _access_path_only(record: logging.LogRecord) -> None:
    """uvicorn's access line without the query string: a GraphQL GET carries the query's
    variables there, URL-encoded, where redaction cannot see a password."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, version, status = record.args
        if isinstance(path, str) and "?" in path:
            record.args = (client, method, path.split("?", 1)[0] + "?…", version, status)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **context_fields(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request_id=… tenant=…] message`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        known = [f"{k}={v}" for k, v in context_fields().items() if v]
        record.context = f" [{' '.join(known)}]" if known else ""
        return redact(super().format(record))


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def make_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if settings.json_logs else TextFormatter())
    return handler


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of this process through one UDS handler (replacing any earlier
    one) at `settings.log_level`; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = make_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING if root.level > logging.DEBUG else logging.NOTSET)
    return handler
