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
