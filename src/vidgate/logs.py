"""Structured logs (structlog): console for people, JSON for machines. Never API keys or prompts."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import orjson
import structlog

from vidgate.config import Settings

# Libraries whose records below WARNING would carry credentials or user data; see configure_logging.
QUIETED_LOGGERS = ("httpx", "httpcore", "aiosqlite")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor
    if settings.log_format == "json":
        # orjson straight to bytes: several times faster than json.dumps, and the access line is
        # written for every request. Non-string keys and odd values are rendered, never an error.
        renderer = structlog.processors.JSONRenderer(
            serializer=functools.partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS)
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        # Off: tests reconfigure logging between gateways, and a cached logger would keep the old output.
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every request's URL whole at INFO (and httpcore its connections at DEBUG): presigned
    # image links, callback URLs and result links carry credentials in their query strings.
    # vidgate.net.outbound_log logs outbound requests instead, with the query string removed.
    # aiosqlite logs every statement with its parameters at DEBUG: prompts, callback URLs, key hashes.
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


class _Stderr:
    """structlog's output: each rendered line (bytes from orjson, text from the console renderer) to
    stderr as it is *now*: `sys.stderr` may be replaced after logging is configured (test capture, an
    embedding host), and structlog's own loggers keep the stream they were given. One write per line,
    so lines from several threads do not interleave."""

    def msg(self, message: str | bytes) -> None:
        stream = sys.stderr
        if isinstance(message, bytes):
            binary = getattr(stream, "buffer", None)
            if binary is not None:
                binary.write(message + b"\n")
                binary.flush()
                return
            message = message.decode()
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


_STDERR = _Stderr()


def _stderr_logger(*args: Any) -> _Stderr:
    return _STDERR
