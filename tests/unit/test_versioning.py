"""tools.versioning: the one version parser (sort key, comparison, filter number, ingest text)."""

from __future__ import annotations

import pytest
from ragroute.tools.versioning import is_newer, normalize_version, version_key, version_number


def test_version_key_and_is_newer():
    assert version_key("2.10.0") > version_key("2.9.1")
    assert version_key("1.0-rc1") == (1, 0, "rc1")
    assert is_newer("2.10.0", "2.9.1") and not is_newer("2.9.1", "2.10.0")
    assert not is_newer("beta", "2.0")  # mixed text/number parts are not comparable


def test_version_number_for_range_filters():
    assert version_number("2.10.0") > version_number("2.9.1")
    assert version_number("v2.10") == version_number("2.10.0")
    assert version_number("2024-01-01") is None and version_number(2) is None
    assert version_number("1.2.3.4.5") is None and version_number("1000.0") is None


def test_normalize_version_for_ingest():
    assert normalize_version(" v2.10.1 ") == "2.10.1"
    assert normalize_version("2.10.1-rc.1") == "2.10.1-rc.1"
    assert normalize_version(3) == "3"
    for bad in (True, None, "two", "2..1", ""):
        with pytest.raises(ValueError):
            normalize_version(bad)
