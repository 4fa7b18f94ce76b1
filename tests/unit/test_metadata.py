"""Metadata: front matter, sidecars, CLI overrides, precedence and per-key validation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ragroute.tools.errors import InputError
from ragroute.tools.metadata import (
    KNOWN_FIELDS,
    normalize_date,
    parse_meta_args,
    read_sidecar,
    resolve_metadata,
    split_front_matter,
    validate_metadata,
)


def test_front_matter_is_split_and_values_are_not_type_guessed() -> None:
    text = (
        "---\ntitle: Guide\nversion: 2.10\nactive: no\nlast_updated: 2024-05-01\ntags: [a, b]\n---\n# Body\n"
    )
    meta, body = split_front_matter(text)
    assert body == "# Body\n"
    # YAML 1.1 would turn these into 2.1, False and a date; we keep the text and coerce per key later
    assert meta == {
        "title": "Guide",
        "version": "2.10",
        "active": "no",
        "last_updated": "2024-05-01",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize(
    "text",
    ["# No front matter\n", "intro\n---\ntitle: x\n---\n", "---\nnever closed\n# body"],
)
def test_text_without_front_matter_is_untouched(text: str) -> None:
    assert split_front_matter(text) == ({}, text)


def test_empty_front_matter_and_dotted_terminator() -> None:
    assert split_front_matter("---\n---\nbody") == ({}, "body")
    assert split_front_matter("---\na: 1\n...\nbody") == ({"a": "1"}, "body")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("---\ntitle: [unclosed\n---\nx", "invalid YAML in front matter at line"),
        ("---\n- just\n- a list\n---\nx", "front matter must be a mapping"),
    ],
)
def test_bad_front_matter_raises_input_error(raw: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        split_front_matter(raw)


def test_simple_parser_is_used_without_pyyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` raise ImportError
    meta, body = split_front_matter(
        "---\ntitle: 'Quoted: yes'\naccess_groups: [eng, ops]\n# comment\n---\nbody"
    )
    assert meta == {"title": "Quoted: yes", "access_groups": ["eng", "ops"]}
    assert body == "body"
    with pytest.raises(InputError, match="expected key: value"):
        split_front_matter("---\nno colon here\n---\nbody")


def test_sidecar_json_and_yaml(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("x", encoding="utf-8")
    assert read_sidecar(doc) == {}
    (tmp_path / "a.md.meta.yaml").write_text("doc_type: policy\n", encoding="utf-8")
    assert read_sidecar(doc) == {"doc_type": "policy"}
    # .meta.json wins over .meta.yaml when both exist
    (tmp_path / "a.md.meta.json").write_text('{"doc_type": "faq", "security_level": 2}', encoding="utf-8")
    assert read_sidecar(doc) == {"doc_type": "faq", "security_level": 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{broken", "invalid JSON in sidecar a.md.meta.json"), ("[1, 2]", "must hold a JSON object")],
)
def test_bad_sidecar_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "a.md.meta.json").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_sidecar(tmp_path / "a.md")


def test_parse_meta_args_coerces_known_keys() -> None:
    meta = parse_meta_args(
        ["doc_type=Technical", "access_groups=eng, ops,,eng", "security_level=2", "confidence_score=0.75",
         "version=v2.10.0", "last_updated=2024-05-01T10:00:00Z", "team=infra", "priority=3", "pinned=true"]
    )  # fmt: skip
    assert meta == {
        "doc_type": "technical",
        "access_groups": ["eng", "ops"],
        "security_level": 2,
        "confidence_score": 0.75,
        "version": "2.10.0",
        "last_updated": "2024-05-01T10:00:00+00:00",
        "team": "infra",
        "priority": 3,
        "pinned": True,
    }
    assert parse_meta_args([]) == {} and parse_meta_args(None) == {}


@pytest.mark.parametrize("arg", ["doc_type", "=x", ""])
def test_parse_meta_args_rejects_missing_equals(arg: str) -> None:
    with pytest.raises(InputError, match="key=value"):
        parse_meta_args([arg])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("security_level", "-1", "integer >= 0"),
        ("security_level", "high", "integer >= 0"),
        ("security_level", 2.5, "integer >= 0"),
        ("security_level", True, "integer >= 0"),
        ("confidence_score", "1.5", "between 0 and 1"),
        ("confidence_score", "nan", "between 0 and 1"),
        ("confidence_score", "sure", "between 0 and 1"),
        ("version", "two", "dotted version"),
        ("version", "1..2", "dotted version"),
        ("last_updated", "yesterday", "ISO date"),
        ("last_updated", "2024-13-01", "ISO date"),
        ("access_groups", {"a": 1}, "list of group names"),
        ("access_groups", ["ok", None], "list of group names"),
        ("doc_type", ["a"], "a string"),
        ("extra", float("inf"), "a finite number"),
    ],
)
def test_bad_values_name_key_value_and_expectation(key: str, value: object, expected: str) -> None:
    with pytest.raises(InputError) as info:
        validate_metadata({key: value})
    message = str(info.value)
    assert key in message and repr(value) in message and expected in message


@pytest.mark.parametrize("key", ["parent_id", "chunk_index", "section"])
def test_reserved_keys_are_rejected(key: str) -> None:
    with pytest.raises(InputError, match="reserved"):
        validate_metadata({key: "x"})


@pytest.mark.parametrize("key", ["", " padded", "$where", "#id", "chroma:doc", "tab\tkey"])
def test_invalid_key_names_are_rejected(key: str) -> None:
    with pytest.raises(InputError, match="metadata key"):
        validate_metadata({key: 1})


def test_free_form_key_names_are_accepted() -> None:
    assert validate_metadata({"Pub Date": "2020", "a.b-c": "x"}) == {"Pub Date": 2020, "a.b-c": "x"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", "2024-05-01"),
        ("2024-05-01 10:30", "2024-05-01T10:30:00"),
        ("2024-05-01T10:30:00Z", "2024-05-01T10:30:00+00:00"),
    ],
)
def test_dates_are_normalized(value: str, expected: str) -> None:
    assert normalize_date(value) == expected


def test_unknown_keys_are_kept_as_scalars() -> None:
    assert validate_metadata(
        {"tags": ["a", "b"], "n": "1.5", "empty": None, "flag": False, "zip": "02139", "api": "1.10",
         "count": "42", "nested": {"x": [1, {"y": 2}]}}
    ) == {
        "tags": "a, b",
        "n": 1.5,
        "flag": False,
        "zip": "02139",
        "api": "1.10",
        "count": 42,
        "nested": '{"x": [1, {"y": 2}]}',
    }  # fmt: skip


def test_precedence_cli_over_sidecar_over_front_matter_over_defaults() -> None:
    merged = resolve_metadata(
        {"source": "default.md", "doc_type": "text", "language": "en"},
        {"doc_type": "technical", "version": "1.0", "category": "guide"},
        {"version": "2.0", "category": "ops"},
        {"category": "security"},
    )
    assert merged == {
        "source": "default.md",
        "language": "en",
        "doc_type": "technical",
        "version": "2.0",
        "category": "security",
    }


def test_precedence_layers_are_each_validated() -> None:
    with pytest.raises(InputError, match="security_level"):
        resolve_metadata({}, {"security_level": "-3"}, {}, {"security_level": 1})


def test_known_fields_are_documented() -> None:
    assert set(KNOWN_FIELDS) >= {
        "doc_type", "version", "last_updated", "source", "language", "category",
        "access_groups", "security_level", "confidence_score",
    }  # fmt: skip
    assert all(desc for desc in KNOWN_FIELDS.values())
