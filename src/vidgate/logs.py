"""Structured logs (structlog): console for people, JSON for machines. Never API keys or prompts."""

from __future__ import annotations

import logging
import sys

import structlog

from vidgate.config import Settings

# Libraries whose records below WARNING would carry credentials or user data; see configure_logging.
QUIETED_LOGGERS = ("httpx", "httpcore", "aiosqlite")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every request's URL whole at INFO (and httpcore its connections at DEBUG): presigned
    # image links, callback URLs and result links carry credentials in their query strings.
    # vidgate.net.outbound_log logs outbound requests instead, with the query string removed.
    # aiosqlite logs every statement with its parameters at DEBUG: prompts, callback URLs, key hashes.
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
