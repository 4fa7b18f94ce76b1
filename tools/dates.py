"""Dates in metadata: the one place ISO date and datetime values are parsed, in the forms callers need.

`parse_date` (a `date`, for freshness and version tie-breaks), `date_epoch` (seconds, for range filters and
Chroma's shadow keys) and `normalize_date` (ISO text, for ingest validation).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_iso(text: str) -> dt.date | dt.datetime:
    """A date for "YYYY-MM-DD", else a datetime (ISO 8601, spaces around ignored); ValueError otherwise."""
    text = text.strip()
    return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)


def parse_date(value: Any) -> dt.date | None:
    """The date of a date, datetime or ISO string (its first 10 characters); None when unparsable."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def date_epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO date or datetime string (UTC when no zone), or None when it is not one."""
    if not isinstance(value, str) or not _DATE_PREFIX.match(value.strip()):
        return None
    try:
        parsed = parse_iso(value)
    except ValueError:
        return None
    when = parsed if isinstance(parsed, dt.datetime) else dt.datetime(parsed.year, parsed.month, parsed.day)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def normalize_date(value: Any) -> str:
    """ISO text (`2024-05-01`, `2024-05-01T10:00:00+00:00`) of a date, datetime or ISO string."""
    if isinstance(value, dt.date):  # a datetime is a date too
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not an ISO date: {value!r}")
    return parse_iso(value).isoformat()
