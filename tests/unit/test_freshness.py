"""tools.freshness.staleness_notes: which cited sources get a "may be outdated" note (issue 12)."""

from __future__ import annotations

import datetime as dt

from ragroute.tools.freshness import staleness_notes

TODAY = dt.date(2026, 10, 1)


def doc(n: int, version: str = "", last_updated: str = "2020-01-01", title: str = "Orbit Guide") -> dict:
    meta = {"title": title, "doc_type": "technical", "last_updated": last_updated}
    return {"n": n, "metadata": {**meta, "version": version} if version else meta}


def test_the_only_or_newest_version_is_current_however_old():
    assert staleness_notes([doc(1, "2.10.0")], [1], 30, today=TODAY) == []
    three = [doc(1, "2.9.1"), doc(2, "2.10.0"), doc(3, "2.10.1", "2019-05-05")]
    assert staleness_notes(three, [3], 30, today=TODAY) == []


def test_an_older_version_names_the_newest_one():
    three = [doc(1, "2.9.1"), doc(2, "2.10.0"), doc(3, "2.10.1", "2019-05-05")]
    assert staleness_notes(three, [1, 2], 100000, today=TODAY) == [
        "Note: source [1] is version 2.9.1, last updated 2020-01-01; a newer version (2.10.1) exists.",
        "Note: source [2] is version 2.10.0, last updated 2020-01-01; a newer version (2.10.1) exists.",
    ]
    # a newer version among the other retrieved candidates counts too; another family does not
    others = [{"metadata": {**doc(0, "3.0")["metadata"]}}, doc(0, "9.0", title="Other Guide")]
    notes = staleness_notes([doc(1, "2.10.0")], [1], 30, today=TODAY, others=others)
    assert notes == [
        "Note: source [1] is version 2.10.0, last updated 2020-01-01; a newer version (3.0) exists."
    ]


def test_versions_without_an_order_are_mentioned():
    notes = staleness_notes([doc(1, "2.10.0"), doc(2, "2.x")], [1], 100000, today=TODAY)
    assert notes == ["Note: source [1] is version 2.10.0, last updated 2020-01-01; other versions exist."]


def test_an_unversioned_source_is_judged_by_its_date():
    assert staleness_notes([doc(1)], [1], 30, today=TODAY) == [
        "Note: source [1] is last updated 2020-01-01; may be outdated."
    ]
    assert staleness_notes([doc(1, last_updated="2026-09-20")], [1], 30, today=TODAY) == []
    assert staleness_notes([{"n": 1, "metadata": {}}], [1], 0, today=TODAY) == []  # undated: nothing to say
