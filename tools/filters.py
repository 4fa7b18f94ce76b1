"""Mongo-style metadata filters: parse and validate, evaluate in Python, compile to Chroma `where`.

Grammar: ``{"field": value}`` | ``{"field": {"$eq|$ne|$in|$nin|$gt|$gte|$lt|$lte": v}}`` |
``{"$and": [...]}`` | ``{"$or": [...]}``; several keys in one dict are an implicit ``$and``.

Semantics (identical on both retrieval paths; tests/unit/test_filters.py checks parity against Chroma):
- a list-valued metadata field (e.g. ``tags``) matches ``$eq``/``$in`` when any element matches;
  ``$ne``/``$nin`` when no element matches;
- ``$ne``/``$nin`` match chunks that lack the field (as in MongoDB); every other operator needs the field;
- range operators compare by the operand's kind: a number compares numbers, an ISO date ("2024-03-01",
  "2024-03-01T10:00:00Z") compares dates, a dotted version ("2.10.0", "v1.2") compares versions
  ("2.10.0" > "2.9.1"); a value of another kind never matches a range condition;
- the ACL from `AccessScope` is one more conjunct that is always added and cannot be overridden.

Chroma stores only scalars and compares numbers unreliably across int/float, so the index writes normalized
shadow keys (see `chroma_metadata`): every number as float, ``<field>__epoch`` for date strings,
``<field>__vkey`` for version strings, ``<field>__has__<item>`` booleans for list items, and ACL keys
``acl__public`` / ``acl__g__<group>`` / ``acl__level``.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from typing import Any

from ragroute.tools.dates import date_epoch
from ragroute.tools.errors import FilterError, is_valid_unicode
from ragroute.tools.types import AccessScope
from ragroute.tools.versioning import version_number

COMPARISON_OPS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
LOGICAL_OPS = ("$and", "$or")
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
Scalar = str | int | float | bool

SHADOW_SEP = "__"
MAX_DEPTH = 32  # nested $and/$or levels
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlist, _QUOTE.maxdict = 2, 80, 80, 4, 4


def _quote(value: Any) -> str:
    """A caller's value in an error message: short, and no recursion into a deeply nested operand."""
    return _QUOTE.repr(value)


# --------------------------------------------------------------------------- value kinds


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _range_kind(operand: Any) -> str:
    if _is_number(operand):
        return "number"
    if date_epoch(operand) is not None:
        return "date"
    if version_number(operand) is not None:
        return "version"
    raise FilterError(
        f"range operand {_quote(operand)} must be a number, an ISO date ('2024-03-01') "
        "or a version ('2.10.0')"
    )


def _range_key(value: Any, kind: str) -> float | None:
    if kind == "number":
        return float(value) if _is_number(value) else None
    if kind == "date":
        return date_epoch(value)
    return version_number(value)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Cond:
    """One field condition: `field op operand`."""

    field: str
    op: str
    operand: Any


@dataclass(frozen=True)
class Logic:
    """`$and` / `$or` over child nodes."""

    op: str
    children: tuple[Node, ...]


Node = Cond | Logic


def _is_text(v: Any) -> bool:
    """A str that encodes as UTF-8 (a lone surrogate would make Chroma reject the whole query)."""
    return isinstance(v, str) and is_valid_unicode(v)


def _check_scalar(field: str, op: str, v: Any) -> None:
    if isinstance(v, bool) or _is_text(v) or _is_number(v):
        return
    raise FilterError(f"filter {_quote(field)} {op}: operand {_quote(v)} must be a string, number or boolean")


def _parse_field(field: str, spec: Any) -> Node:
    if not _is_text(field) or not field or field.startswith("$"):
        raise FilterError(
            f"unknown operator {_quote(field)} at the top level; "
            f"options: {', '.join(LOGICAL_OPS)} or a field name"
        )
    if SHADOW_SEP in field or field.startswith("acl"):
        raise FilterError(
            f"filter field {_quote(field)} is reserved (contains '{SHADOW_SEP}' or starts with 'acl')"
        )
    if not isinstance(spec, dict):
        if isinstance(spec, list):
            raise FilterError(f"filter {_quote(field)}: use {{'$in': [...]}} to match one of several values")
        _check_scalar(field, "$eq", spec)
        return Cond(field, "$eq", spec)
    if not spec:
        raise FilterError(f"filter {_quote(field)}: empty operator object")
    conds: list[Node] = []
    for op, v in spec.items():
        if op not in COMPARISON_OPS:
            raise FilterError(
                f"unknown operator {_quote(op)} for field {_quote(field)}; "
                f"options: {', '.join(COMPARISON_OPS)}"
            )
        if op in ("$in", "$nin"):
            if not isinstance(v, list):
                raise FilterError(f"filter {_quote(field)} {op}: operand must be a list, got {_quote(v)}")
            for item in v:
                _check_scalar(field, op, item)
            conds.append(Cond(field, op, tuple(v)))
        elif op in RANGE_OPS:
            _range_kind(v)
            conds.append(Cond(field, op, v))
        else:
            _check_scalar(field, op, v)
            conds.append(Cond(field, op, v))
    return conds[0] if len(conds) == 1 else Logic("$and", tuple(conds))


def parse_filter(filters: dict[str, Any] | str | None) -> Node | None:
    """Validate a filter (dict or JSON text) and return its tree; None for no filter. Raises FilterError."""
    if filters is None:
        return None
    if isinstance(filters, str):
        try:
            filters = json.loads(filters)
        except json.JSONDecodeError as exc:
            raise FilterError(f"filter is not valid JSON: {exc.msg} at position {exc.pos}") from exc
        except RecursionError:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(filters, dict):
        raise FilterError(f"filter must be a JSON object, got {type(filters).__name__}")
    if not filters:
        return None
    return _parse_obj(filters)


def _parse_obj(obj: dict[str, Any], depth: int = 0) -> Node:
    if depth > MAX_DEPTH:  # a hostile filter must not exhaust the stack here or in Chroma
        raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
    nodes: list[Node] = []
    for key, val in obj.items():
        if key in LOGICAL_OPS:
            if not isinstance(val, list) or not val:
                raise FilterError(f"{key} needs a non-empty list of filter objects, got {_quote(val)}")
            children = []
            for item in val:
                if not isinstance(item, dict) or not item:
                    raise FilterError(f"{key} items must be non-empty filter objects, got {_quote(item)}")
                children.append(_parse_obj(item, depth + 1))
            nodes.append(children[0] if len(children) == 1 else Logic(key, tuple(children)))
        else:
            nodes.append(_parse_field(key, val))
    return nodes[0] if len(nodes) == 1 else Logic("$and", tuple(nodes))


# --------------------------------------------------------------------------- Python evaluation


def _eq(value: Any, operand: Any) -> bool:
    # bool and int must not match each other (True == 1 in Python); ints and floats do (1 == 1.0)
    if isinstance(value, bool) or isinstance(operand, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    if _is_number(value) and _is_number(operand):
        return float(value) == float(operand)
    return type(value) is type(operand) and value == operand


def _values(meta: dict[str, Any], field: str) -> list[Any] | None:
    if field not in meta or meta[field] is None:
        return None
    v = meta[field]
    return list(v) if isinstance(v, list | tuple | set) else [v]


def _eval(node: Node, meta: dict[str, Any]) -> bool:
    if isinstance(node, Logic):
        if node.op == "$and":
            return all(_eval(c, meta) for c in node.children)
        return any(_eval(c, meta) for c in node.children)
    vals = _values(meta, node.field)
    op = node.op
    if op == "$eq":
        return vals is not None and any(_eq(v, node.operand) for v in vals)
    if op == "$ne":
        return vals is None or not any(_eq(v, node.operand) for v in vals)
    if op == "$in":
        return vals is not None and any(_eq(v, o) for v in vals for o in node.operand)
    if op == "$nin":
        return vals is None or not any(_eq(v, o) for v in vals for o in node.operand)
    if vals is None or isinstance(meta[node.field], list | tuple | set):
        return False  # a range never matches a missing or list-valued field
    kind = _range_kind(node.operand)
    key = _range_key(vals[0], kind)
    ref = _range_key(node.operand, kind)
    if key is None or ref is None:
        return False
    return {"$gt": key > ref, "$gte": key >= ref, "$lt": key < ref, "$lte": key <= ref}[op]


_LOCKED_LEVEL = 1e18  # stands in for a malformed security_level: no clearance reaches it


def _acl_of(meta: dict[str, Any]) -> tuple[list[str] | None, float]:
    """(access groups, security level) of chunk metadata; malformed values fail closed (None groups: no
    group may read it; a non-numeric level: no clearance reaches it)."""
    groups = meta.get("access_groups")
    groups = [] if groups is None or groups == "" else [groups] if isinstance(groups, str) else groups
    ok = isinstance(groups, list | tuple | set) and all(isinstance(g, str) for g in groups)
    level = meta.get("security_level")
    level = 0 if level is None else level
    return (list(groups) if ok else None), (float(level) if _is_number(level) else _LOCKED_LEVEL)


def acl_allows(meta: dict[str, Any], access: AccessScope | None) -> bool:
    """True iff the chunk's ACL admits `access` (None or an unrestricted scope admits everything)."""
    if access is None or access.unrestricted:
        return True
    chunk_groups, level = _acl_of(meta)
    if chunk_groups is None or (chunk_groups and not set(access.groups or []).intersection(chunk_groups)):
        return False
    return level <= (access.clearance or 0)


def matches(
    filters: dict[str, Any] | Node | None, meta: dict[str, Any], access: AccessScope | None = None
) -> bool:
    """Whether chunk metadata satisfies the filter AND the ACL."""
    node = filters if isinstance(filters, Cond | Logic) or filters is None else parse_filter(filters)
    if not acl_allows(meta, access):
        return False
    return True if node is None else _eval(node, meta)


# --------------------------------------------------------------------------- Chroma side


def _shadow_item(field: str, item: Any) -> str:
    return f"{field}{SHADOW_SEP}has{SHADOW_SEP}{json.dumps(item, sort_keys=True)}"


def chroma_metadata(meta: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Flatten chunk metadata into Chroma's scalar-only form with the shadow keys `compile_where` uses."""
    out: dict[str, str | int | float | bool] = {}
    for k, v in meta.items():
        if v is None or SHADOW_SEP in k:
            continue
        if isinstance(v, list | tuple | set):
            items = [x for x in v if isinstance(x, str | bool) or _is_number(x)]
            # readable copy under another key, so scalar conditions on `k` never see the list
            out[f"{k}{SHADOW_SEP}json"] = json.dumps(list(v), default=str)
            for item in items:
                out[_shadow_item(k, float(item) if _is_number(item) else item)] = True
            continue
        if isinstance(v, bool | str):
            out[k] = v
        elif _is_number(v):
            out[k] = float(v)
        else:
            out[k] = json.dumps(v, default=str)
            continue
        if isinstance(v, str):
            if (d := date_epoch(v)) is not None:
                out[f"{k}{SHADOW_SEP}epoch"] = d
            if (ver := version_number(v)) is not None:
                out[f"{k}{SHADOW_SEP}vkey"] = ver
    groups, level = _acl_of(meta)
    out["acl__public"] = groups == []
    for g in groups or []:
        out[f"acl__g__{g}"] = True
    out["acl__level"] = level
    return out


_NEVER: dict[str, Any] = {"acl__never": True}  # no chunk carries this key, so nothing matches
_ALWAYS: dict[str, Any] = {"acl__never": {"$ne": True}}


def _and(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _or(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _norm(v: Any) -> Any:
    return float(v) if _is_number(v) else v


def _compile_eq(field: str, operand: Any) -> dict[str, Any]:
    # a scalar field equal to the operand, or a list field containing it
    return _or([{field: _norm(operand)}, {_shadow_item(field, _norm(operand)): True}])


def _compile(node: Node) -> dict[str, Any]:
    if isinstance(node, Logic):
        parts = [_compile(c) for c in node.children]
        return _and(parts) if node.op == "$and" else _or(parts)
    f, op, v = node.field, node.op, node.operand
    if op == "$eq":
        return _compile_eq(f, v)
    if op == "$in":
        return _or([_compile_eq(f, x) for x in v]) if v else _NEVER
    if op == "$ne":
        return _and([{f: {"$ne": _norm(v)}}, {_shadow_item(f, _norm(v)): {"$ne": True}}])
    if op == "$nin":
        return _and([_compile(Cond(f, "$ne", x)) for x in v]) if v else _ALWAYS
    kind = _range_kind(v)
    ref = _range_key(v, kind)
    key = {"number": f, "date": f"{f}{SHADOW_SEP}epoch", "version": f"{f}{SHADOW_SEP}vkey"}[kind]
    # list-valued fields are stored only as __has__/__json keys, so a range never matches them
    return {key: {op: ref}}


def acl_where(access: AccessScope | None) -> dict[str, Any] | None:
    """The Chroma `where` conjunct for an ACL; None when the caller is unrestricted."""
    if access is None or access.unrestricted:
        return None
    groups = [{f"acl__g__{g}": True} for g in sorted(set(access.groups or []))]
    return _and(
        [_or([{"acl__public": True}, *groups]), {"acl__level": {"$lte": float(access.clearance or 0)}}]
    )


def compile_where(
    filters: dict[str, Any] | Node | None, access: AccessScope | None = None
) -> dict[str, Any] | None:
    """Compile filter + ACL into one Chroma `where` dict (None when nothing restricts)."""
    node = filters if isinstance(filters, Cond | Logic) or filters is None else parse_filter(filters)
    parts: list[dict[str, Any]] = []
    if node is not None:
        parts.append(_compile(node))
    acl = acl_where(access)
    if acl is not None:
        parts.append(acl)
    return _and(parts) if parts else None


def describe(filters: dict[str, Any] | None) -> str:
    """Canonical JSON of a filter, for cache keys and traces."""
    return json.dumps(filters or {}, sort_keys=True, separators=(",", ":"))
