"""Filters of the LOGGING setting."""

from __future__ import annotations

import logging

from controlplane.db import is_database_busy


class BusyDatabaseFilter(logging.Filter):
    """On ``django.request``: a request that found SQLite locked is answered 503 with Retry-After (the client
    retries; nothing is broken), so it is logged once as a warning, not as a 500 with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_database_busy(record.exc_info[1]):
            return False  # Django's "Internal Server Error" line for the exception the middleware turns into a 503
        if getattr(record, "status_code", None) == 503:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
