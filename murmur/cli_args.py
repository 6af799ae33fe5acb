"""Argument types the command modules share (argparse `type=` callables)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def date_argument(value: str) -> datetime:
    """`2025-01-13` or an ISO 8601 time; UTC unless it says otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def database_name(value: str) -> str:
    """A PostgreSQL database name: PostgreSQL cuts a longer one to 63 bytes without a word, so it is refused."""
    if not value or "\0" in value or len(value.encode()) > 63:
        raise argparse.ArgumentTypeError(f"{value!r} is not a database name; use 1 to 63 bytes, e.g. murmur_demo")
    return value
