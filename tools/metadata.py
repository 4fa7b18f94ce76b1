"""Document metadata: front matter, sidecar files and CLI overrides, merged and validated.

Precedence (highest first): CLI `--meta k=v` > sidecar `<file>.meta.json|.meta.yaml` > markdown front
matter > loader defaults. Known keys are coerced to one type each (see `KNOWN_FIELDS`) so that filters
and ACL checks compare like with like; unknown keys are kept as scalars.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ragroute.tools import dates
from ragroute.tools.errors import InputError
from ragroute.tools.versioning import normalize_version

KNOWN_FIELDS: dict[str, str] = {
    "title": "str: display title; defaults to the first heading or the file name",
    "doc_type": "str, lower-cased: kind of document (technical, policy, faq...); picks fusion weights",
    "version": "str: dotted version such as 2.10.1 (a leading 'v' is dropped); compared numerically",
    "family": "str: documents sharing it are versions of one document; only the newest is used unless a "
    "filter names `version` or the question names the older one. Default: doc_type + title without the "
    "version (tools/versions.py)",
    "last_updated": "ISO date or datetime (2024-05-01, 2024-05-01T10:00:00Z), stored as ISO text",
    "source": "str: where the document came from; defaults to the file path",
    "language": "str, lower-cased: language code such as en",
    "category": "str: free-form grouping",
    "access_groups": "list[str] or comma-separated str: groups allowed to read it; empty means public",
    "security_level": "int >= 0: clearance needed to read it (default 0)",
    "confidence_score": "float in [0, 1]: how much the source is trusted",
}
# keys the chunker and the index set on every chunk; a document cannot override them
RESERVED_KEYS = frozenset({"doc_id", "chunk_id", "chunk_index", "parent_id", "section", "section_path"})
_STRING_FIELDS = ("title", "source", "category", "family")
_LOWER_FIELDS = ("doc_type", "language")
# keys are free-form, except what Chroma or the filter language would misread ($op, #doc, chroma:...)
_KEY_RE = re.compile(r"^(?!chroma:)[^\s$#\x00-\x1f][^\x00-\x1f]*(?<=\S)$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_FRONT_MATTER_RE = re.compile(
    r"\A(?:\ufeff)?---[ \t]*\r?\n(.*?)(?:\r?\n)?^(?:---|\.\.\.)[ \t]*$\r?\n?", re.S | re.M
)
SIDECAR_SUFFIXES = (".meta.json", ".meta.yaml", ".meta.yml")


# ------------------------------------------------------------------------------------------ sources


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a markdown text; ({}, text) when it has none.

    Values are parsed without YAML's type guessing (`version: 2.10` stays "2.10"); validation coerces.
    """
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return {}, text
    raw = match.group(1)
    body = text[match.end() :]
    if not raw.strip():
        return {}, body
    data = _parse_yaml(raw, what="front matter")
    return data, body


def _parse_yaml(raw: str, *, what: str) -> dict[str, Any]:
    """A mapping from YAML text (all scalars as strings); InputError naming `what` when it is not one."""
    try:
        import yaml
    except ImportError:  # PyYAML is optional; the fallback understands flat `key: value` lines
        return _parse_simple(raw, what=what)
    try:
        data = yaml.load(raw, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"invalid YAML in {what}{where}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a mapping of key: value, got {type(data).__name__}")
    return data


def _parse_simple(raw: str, *, what: str) -> dict[str, Any]:
    """Flat `key: value` parser used when PyYAML is missing; `[a, b]` becomes a list."""
    out: dict[str, Any] = {}
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise InputError(f"invalid {what} line {lineno}: {line.strip()!r} (expected key: value)")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            out[key.strip()] = [_unquote(v.strip()) for v in value[1:-1].split(",") if v.strip()]
        else:
            out[key.strip()] = _unquote(value)
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def sidecar_path(path: str | Path) -> Path | None:
    """The sidecar metadata file next to `path` (`<file>.meta.json` first), or None."""
    p = Path(path)
    for suffix in SIDECAR_SUFFIXES:
        candidate = p.with_name(p.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Metadata from the sidecar of `path`; {} when there is none, InputError when it is malformed."""
    side = sidecar_path(path)
    if side is None:
        return {}
    try:
        raw = side.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sidecar {side.name}: {exc}") from None
    if side.name.endswith(".json"):
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON in sidecar {side.name}: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict):
            raise InputError(f"sidecar {side.name} must hold a JSON object, got {type(data).__name__}")
        return data
    return _parse_yaml(raw, what=f"sidecar {side.name}")


def parse_meta_args(args: list[str] | None) -> dict[str, Any]:
    """`["doc_type=technical", "access_groups=eng,ops"]` -> validated metadata dict (CLI `--meta`)."""
    out: dict[str, Any] = {}
    for arg in args or []:
        key, sep, value = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--meta expects key=value, got {arg!r}")
        out[key] = value.strip()
    return validate_metadata(out)


# ------------------------------------------------------------------------------------- validation


def validate_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A copy of `meta` with known keys coerced; InputError naming the key, value and expectation."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise InputError(
                f"metadata key {key!r} is invalid: it must be non-empty, without surrounding spaces, "
                "and not start with '$', '#' or 'chroma:'"
            )
        if key in RESERVED_KEYS:
            raise InputError(f"metadata key {key!r} is reserved (set by the chunker); rename it")
        coerced = _coerce(key, value)
        if coerced is not None:
            out[key] = coerced
    return out


def _coerce(key: str, value: Any) -> Any:
    """One value coerced for `key`; None means 'drop it' (empty optional value)."""
    if key in _STRING_FIELDS or key in _LOWER_FIELDS:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _bad(key, value, "a string")
        text = str(value).strip()
        if not text:
            return None
        return text.lower() if key in _LOWER_FIELDS else text
    if key == "version":
        return _version(value)
    if key == "last_updated":
        return normalize_date(value, key=key)
    if key == "access_groups":
        return _groups(value)
    if key == "security_level":
        if isinstance(value, bool):
            raise _bad(key, value, "an integer >= 0")
        number = int(value.strip()) if isinstance(value, str) and _INT_RE.match(value.strip()) else value
        if not isinstance(number, int) or number < 0:
            raise _bad(key, value, "an integer >= 0")
        return number
    if key == "confidence_score":
        score = float(value.strip()) if isinstance(value, str) and _FLOAT_RE.match(value.strip()) else value
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise _bad(key, value, "a number between 0 and 1")  # NaN fails the range check too
        return float(score)
    return _scalar(key, value)


def _bad(key: str, value: Any, expected: str) -> InputError:
    return InputError(f"metadata {key}={value!r} is invalid: expected {expected}")


def _version(value: Any) -> str:
    try:
        return normalize_version(value)
    except ValueError:
        raise _bad("version", value, "a dotted version such as 2.10.1") from None


def normalize_date(value: Any, *, key: str = "last_updated") -> str:
    """ISO text for a date or datetime (`2024-05-01`, `2024-05-01T10:00:00+00:00`); InputError otherwise."""
    try:
        return dates.normalize_date(value)
    except ValueError:
        raise _bad(key, value, "an ISO date such as 2024-05-01 or datetime 2024-05-01T10:00:00Z") from None


def _groups(value: Any) -> list[str]:
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _bad("access_groups", value, "a list of group names or a comma-separated string")
    groups: list[str] = []
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise _bad("access_groups", value, "a list of group names or a comma-separated string")
        name = str(item).strip()
        if name and name not in groups:
            groups.append(name)
    return groups


def _scalar(key: str, value: Any) -> Any:
    """Unknown keys: scalars stay; text that is exactly a number becomes one; lists/dicts become text."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(key, value, "a finite number")
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        # only lossless conversions: "42" -> 42 and "1.5" -> 1.5, but "007", "1.10" and "1e3" stay text
        if _INT_RE.match(text) and str(int(text)) == text.lstrip("+"):
            return int(text)
        if _FLOAT_RE.match(text) and repr(float(text)) == text.lstrip("+"):
            return float(text)
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return text
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        raise _bad(key, value, "a scalar, a list or a mapping") from None


def merge_metadata(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Layers merged left to right: later layers win (pass them lowest precedence first)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if layer:
            out.update(layer)
    return out


def resolve_metadata(
    defaults: dict[str, Any] | None,
    front_matter: dict[str, Any] | None,
    sidecar: dict[str, Any] | None,
    cli: dict[str, Any] | None,
) -> dict[str, Any]:
    """Validated metadata with precedence CLI > sidecar > front matter > defaults."""
    return validate_metadata(
        merge_metadata(
            validate_metadata(defaults or {}),
            validate_metadata(front_matter or {}),
            validate_metadata(sidecar or {}),
            validate_metadata(cli or {}),
        )
    )
