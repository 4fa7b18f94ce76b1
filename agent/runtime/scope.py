"""The caller's access scope and the run's metadata filter, built in one place for every search path."""

from __future__ import annotations

from typing import Any

from ragroute.context import Context
from ragroute.tools.types import AccessScope


def describe_scope(ctx: Context) -> str:
    """One line naming the documents a run reads, for the CLI and logs."""
    if ctx.all_access:
        return "all documents (all_access)"
    if ctx.user_groups is None and ctx.clearance is None:
        return "public documents only (give groups/clearance, or all_access, to read more)"
    groups = ",".join(ctx.user_groups or []) or "none"
    return f"public documents + groups {groups}, clearance {ctx.clearance or 0}"


def combined_filters(ctx: Context, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's filter AND the per-question filter (either may be None)."""
    parts = [f for f in (ctx.filters, extra) if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def access_of(ctx: Context) -> AccessScope | None:
    """The caller's access scope: None (every document) only with `all_access`; without groups or
    clearance, public documents only (no access_groups, security_level 0: every document without ACL
    metadata)."""
    if ctx.all_access:
        return None
    return AccessScope(
        groups=list(ctx.user_groups or []), clearance=ctx.clearance if ctx.clearance is not None else 0
    )
