"""tools.dates: the one ISO date parser and its three forms (date, epoch seconds, ISO text)."""

from __future__ import annotations

import datetime as dt

import pytest
from ragroute.tools.dates import date_epoch, normalize_date, parse_date, parse_iso


def test_parse_iso_gives_a_date_or_a_datetime():
    assert parse_iso(" 2024-05-01 ") == dt.date(2024, 5, 1)
    assert parse_iso("2024-05-01T10:00:00Z") == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_iso("2024-13-01")


def test_parse_date_reads_the_date_part():
    assert parse_date("2024-05-01T23:59:00+05:00") == dt.date(2024, 5, 1)
    assert parse_date(dt.datetime(2024, 5, 1, 8)) == dt.date(2024, 5, 1)
    assert parse_date(dt.date(2024, 5, 1)) == dt.date(2024, 5, 1)
    for missing in (None, "", "soon", "2024-13-01", 20240501):
        assert parse_date(missing) is None


def test_date_epoch_orders_dates_and_datetimes():
    assert date_epoch("2024-01-01") == dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    assert date_epoch("2024-01-01") < date_epoch("2024-01-01T00:00:01Z")
    assert date_epoch("2024-01-01T02:00:00+02:00") == date_epoch("2024-01-01")
    assert date_epoch("1.2.3") is None and date_epoch("2024-13-01") is None and date_epoch(5) is None


def test_normalize_date_gives_iso_text():
    assert normalize_date(" 2024-05-01 ") == "2024-05-01"
    assert normalize_date("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00+00:00"
    assert normalize_date(dt.date(2024, 5, 1)) == "2024-05-01"
    for bad in ("", "  ", "May 1", None, 3):
        with pytest.raises(ValueError):
            normalize_date(bad)
