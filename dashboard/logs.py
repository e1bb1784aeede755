"""Application and access logs, as text or JSON lines, with a request id per request.

- `configure_logging(level, fmt)` sets up the root logger (stderr) for `python -m dashboard` and
  for each gunicorn process (wsgi.py); `GunicornLogger` gives gunicorn's own lines the same
  format (gunicorn.conf.py: logger_class).
- `install_request_logging(server)` gives every request an id: an incoming X-Request-ID that is
  a safe short token is kept (so a proxy's id follows the request), anything else is replaced
  by a new random one. The id is echoed in the response's X-Request-ID header, added to every
  log line written while the request runs, and the access line (logger `dashboard.access`)
  records method, path (no query string: it may hold customer data), status and duration.

JSON lines hold time (UTC, ISO 8601), level, logger, message, pid and, when known, request_id,
method, path, status and duration_ms; an exception adds `exc`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
import traceback
from datetime import UTC, datetime

from gunicorn import glogging

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "dashboard.access"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ACCESS_FIELDS = ("method", "path", "status", "duration_ms")
_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s%(request_tag)s: %(message)s"


def request_id_from(header: str | None) -> str:
    """The incoming id when it is a safe short token (1-64 of A-Z a-z 0-9 . _ : -), else a
    new one; never echo arbitrary client text into headers and logs."""
    if header and _SAFE_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


def current_request_id() -> str | None:
    from flask import g, has_request_context

    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) and `request_tag` (text format) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        record.request_tag = f" [{record.request_id}]" if record.request_id else ""
        return True


# Control characters (a CR/LF in a path starts a forged log line; ESC sequences rewrite a
# terminal) and the invisible Unicode line and direction marks.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """`text` with every control character written as its escape (\\n, \\x1b, \\u2028)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """One line per record: every field escaped (a traceback, added after, keeps its lines)."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_tag"):
            RequestIdFilter().filter(record)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:
        # The traceback keeps its lines; each exception's own message (which may quote a
        # client's text) is escaped like any field.
        found = traceback.TracebackException(*ei)
        chain, seen = [found], set()
        while chain:
            te = chain.pop()
            if id(te) in seen:
                continue
            seen.add(id(te))
            if isinstance(getattr(te, "_str", None), str):
                te._str = escape_controls(te._str)
            chain += [t for t in (te.__cause__, te.__context__) if t is not None]
        return "".join(found.format()).rstrip("\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            RequestIdFilter().filter(record)
        stamp = datetime.fromtimestamp(record.created, UTC)
        out = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.request_id:
            out["request_id"] = record.request_id
        for key in _ACCESS_FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def make_formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """One stderr handler on the root logger in the chosen format; calling again replaces it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # The development server's own request lines would repeat our access log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class GunicornLogger(glogging.Logger):
    """gunicorn's master/worker lines in RETENTION_LOG_FORMAT (its own access log is off: the
    app writes the access log, identically under gunicorn and `python -m dashboard`)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        from analytics.config import ConfigError, ServeSettings, setting_from_env

        try:
            fmt = setting_from_env(ServeSettings, "log_format")
        except ConfigError:  # gunicorn.conf.py reports it and exits
            fmt = "text"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(make_formatter(fmt))


def install_request_logging(server) -> None:
    """Request ids, the X-Request-ID response header and the access log on a Flask app."""
    if server.extensions.get("retention_request_logging"):
        return
    server.extensions["retention_request_logging"] = True
    from flask import g, request

    access = logging.getLogger(ACCESS_LOGGER)

    @server.before_request
    def _start_request():
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_start = time.perf_counter()

    @server.after_request
    def _finish_request(response):
        if "request_id" not in g:  # an earlier before_request hook answered first
            _start_request()
        response.headers[REQUEST_ID_HEADER] = g.request_id
        duration_ms = round(1000 * (time.perf_counter() - g.request_start), 1)
        access.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response
