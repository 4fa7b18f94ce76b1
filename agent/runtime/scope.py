"""The caller's access scope and the run's metadata filter, built in one place for every search path."""

from __future__ import annotations

from typing import Any

from ragroute.context import Context
from ragroute.tools.types import AccessScope


def combined_filters(ctx: Context, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's filter AND the per-question filter (either may be None)."""
    parts = [f for f in (ctx.filters, extra) if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def access_of(ctx: Context) -> AccessScope | None:
    """The caller's access scope; None (unrestricted) when neither groups nor clearance is set."""
    if ctx.user_groups is None and ctx.clearance is None:
        return None
    return AccessScope(
        groups=list(ctx.user_groups or []), clearance=ctx.clearance if ctx.clearance is not None else 0
    )
