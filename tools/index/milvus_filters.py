"""Filters on Milvus: the Mongo-style filter tree (tools/filters.py) and the ACL as one Milvus boolean
expression, and the per-chunk columns those expressions read.

Each chunk row carries `filt`, a JSON object of normalized copies of its metadata (written by
`filter_columns`), so every comparison runs server-side with the semantics of `filters.matches`:

- ``filt[field]`` is a list of typed tags of the field's value(s): ``"s:<text>"``, ``"n:<float>"``,
  ``"b:true"``; a scalar gives one tag, a list one per item. ``$eq``/``$in`` are ``json_contains`` /
  ``json_contains_any`` on it (any element matches), ``$ne``/``$nin`` their negation (which Milvus makes
  true for a missing field, as MongoDB does). Tags keep 1 == 1.0 equal and True != 1, as `_eq` does.
- ``filt[field__num]``, ``filt[field__epoch]``, ``filt[field__vkey]`` hold sortable keys of a scalar number,
  ISO date or dotted version, so range conditions compare numbers, dates and versions server-side; a list
  or missing field has none, so a range never matches it.
- the ACL lives in real columns: ``access_groups`` (ARRAY<VARCHAR>) and ``security_level`` (INT64, the
  ceiling of the level; a malformed ACL gets `LOCKED`, which no clearance reaches). Its conjunct is added
  to every search and no filter can remove it.

Strings become double-quoted literals with backslash escapes (`literal`); Milvus's expression parser knows
only \\\\, \\", \\n, \\r (and a few others) and no \\u, and Milvus Lite does not support filter templates, so
this escaping is the one way values reach an expression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ragroute.tools import filters as F
from ragroute.tools.dates import date_epoch
from ragroute.tools.errors import InputError
from ragroute.tools.types import AccessScope
from ragroute.tools.versioning import version_number

INT64_MAX = 2**63 - 1
LOCKED = INT64_MAX  # security level of a chunk whose ACL is malformed: no restricted caller reads it
MAX_GROUPS = 1024  # ARRAY capacity of access_groups
MAX_GROUP_BYTES = 1024  # VARCHAR length of one group name
_RANGE_SUFFIX = {"number": "num", "date": "epoch", "version": "vkey"}
_RANGE_OP = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
ALWAYS = 'chunk_id != ""'  # every stored chunk has a non-empty id
NEVER = 'chunk_id == ""'


def literal(value: str) -> str:
    """A Milvus string literal for any text: quotes and backslashes escaped, line breaks as \\n / \\r."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def literal_list(values: Iterable[str]) -> str:
    """A Milvus list literal of strings."""
    return "[" + ", ".join(literal(v) for v in values) + "]"


def _number(value: float) -> str:
    # repr gives the shortest exact float text ("1e+18", "0.1"), which Milvus parses as a float
    return repr(float(value))


def tag(value: Any) -> str | None:
    """The typed tag of one scalar (None for anything `filters._eq` never matches)."""
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int | float):
        return f"n:{_number(value)}" if math.isfinite(value) else None
    if isinstance(value, str):
        return f"s:{value}"
    return None


def _key(field: str, suffix: str | None = None) -> str:
    name = field if suffix is None else f"{field}{F.SHADOW_SEP}{suffix}"
    return f"filt[{literal(name)}]"


# --------------------------------------------------------------------------- stored columns


def filter_columns(meta: dict[str, Any]) -> dict[str, Any]:
    """The `filt` JSON of one chunk's metadata (see the module docstring)."""
    out: dict[str, Any] = {}
    for field, value in meta.items():
        if value is None or F.SHADOW_SEP in field:
            continue
        items = list(value) if isinstance(value, list | tuple) else [value]
        tags = [t for t in (tag(v) for v in items) if t is not None]
        if tags:
            out[field] = tags
        if isinstance(value, list | tuple | dict):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{field}{F.SHADOW_SEP}num"] = float(value)
        elif isinstance(value, str):
            if (epoch := date_epoch(value)) is not None:
                out[f"{field}{F.SHADOW_SEP}epoch"] = epoch
            if (vkey := version_number(value)) is not None:
                out[f"{field}{F.SHADOW_SEP}vkey"] = vkey
    return out


def acl_columns(meta: dict[str, Any]) -> tuple[list[str], int]:
    """(access_groups, security_level) columns of one chunk, with `filters.acl_allows`'s semantics."""
    groups, level = F._acl_of(meta)  # the one reading of a chunk's ACL, shared with the embedded backend
    if groups is None or level >= F._LOCKED_LEVEL:
        return [], LOCKED  # fail closed: no group lists it and no clearance reaches it
    if len(groups) > MAX_GROUPS or any(len(g.encode()) > MAX_GROUP_BYTES for g in groups):
        raise InputError(
            f"access_groups: at most {MAX_GROUPS} groups of at most {MAX_GROUP_BYTES} bytes each on Milvus"
        )
    return sorted(set(groups)), min(math.ceil(level), LOCKED - 1)


# --------------------------------------------------------------------------- expressions


def _join(op: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"


def compile_node(node: F.Node) -> str:
    """One parsed filter as a Milvus boolean expression over `filt`."""
    if isinstance(node, F.Logic):
        return _join("and" if node.op == "$and" else "or", [compile_node(c) for c in node.children])
    field, op, operand = node.field, node.op, node.operand
    if op in ("$eq", "$ne"):
        t = tag(operand)
        expr = f"json_contains({_key(field)}, {literal(t)})" if t is not None else NEVER
        return expr if op == "$eq" else f"(not {expr})"
    if op in ("$in", "$nin"):
        tags = [t for t in (tag(v) for v in operand) if t is not None]
        expr = f"json_contains_any({_key(field)}, {literal_list(tags)})" if tags else NEVER
        return expr if op == "$in" else f"(not {expr})"
    kind = F._range_kind(operand)
    ref = F._range_key(operand, kind)
    assert ref is not None  # _range_kind accepted the operand
    return f"{_key(field, _RANGE_SUFFIX[kind])} {_RANGE_OP[op]} {_number(ref)}"


def acl_expr(access: AccessScope | None) -> str | None:
    """The ACL conjunct for `access` (None when the caller is unrestricted)."""
    if access is None or access.unrestricted:
        return None
    clearance = max(-INT64_MAX, min(int(access.clearance or 0), LOCKED - 1))
    groups = sorted(set(access.groups or []))
    visible = "array_length(access_groups) == 0"
    if groups:
        visible = f"({visible} or array_contains_any(access_groups, {literal_list(groups)}))"
    return f"({visible} and security_level <= {clearance})"


def scope_expr(node: F.Node | None, access: AccessScope | None, *, live_only: bool = True) -> str:
    """The whole server-side condition of a search: live rows, the caller's filter, and the ACL."""
    parts = ["deleted == false"] if live_only else []
    if node is not None:
        parts.append(compile_node(node))
    acl = acl_expr(access)
    if acl is not None:
        parts.append(acl)
    return " and ".join(parts) if parts else ALWAYS
