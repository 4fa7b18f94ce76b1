"""API keys -> callers: the Identity a key runs as, loaded from a mapping, JSON, a file or the environment,
and the one way a request presents its key (shared by the HTTP guard and the MCP server; no web framework
imported here, the mcp extra does not install FastAPI).

A request presents `X-API-Key: KEY`, else `Authorization: Bearer KEY`. A server without keys ignores a
Bearer token (OpenAI clients always send one, often a placeholder) and runs the request as its anonymous
caller; an X-API-Key sent to a keyless server is refused (401), since its sender expects a key to count.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragroute.tools.errors import ConfigError
from ragroute.tools.types import AccessScope

API_KEY_HEADER = "x-api-key"
IDENTITY_FIELDS = ("user", "groups", "clearance", "write", "unrestricted", "namespace")


@dataclass(frozen=True)
class Identity:
    """Who a request runs as: the ACL groups and clearance enforced on every retrieval."""

    user: str
    groups: tuple[str, ...] = ()
    clearance: int = 0
    write: bool = False  # may POST /ingest and DELETE /documents/{id}
    unrestricted: bool = False  # sees every document (trusted service keys)
    namespace: str | None = None  # the doc-id prefix this key owns (default "<user>/"); see policy.py

    @property
    def owned_prefix(self) -> str:
        """The doc-id prefix under which this caller creates documents (policy.may_write)."""
        return self.namespace or f"{self.user}/"

    def scope(self) -> AccessScope | None:
        """The caller's AccessScope for index calls (None: unrestricted)."""
        return None if self.unrestricted else AccessScope(groups=list(self.groups), clearance=self.clearance)

    def configurable(self) -> dict[str, Any]:
        """The access fields forced into the run's configurable."""
        if self.unrestricted:
            return {"user_groups": None, "clearance": None, "all_access": True}
        return {"user_groups": list(self.groups), "clearance": self.clearance, "all_access": False}


# without API keys callers run as ANONYMOUS (read-only); `ragroute serve --allow-anonymous-writes` opts in
ANONYMOUS = Identity(user="anonymous")
ANONYMOUS_WRITER = Identity(user="anonymous", write=True)


def _identity(key_hint: str, spec: Any) -> Identity:
    where = f"API key {key_hint}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f'{where}: expected an object like {{"user": ..., "groups": [...]}}, got {spec!r}')
    unknown = set(spec) - set(IDENTITY_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; options: {', '.join(IDENTITY_FIELDS)}"
        )
    groups = spec.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"{where}: groups={groups!r} must be a list of group names")
    clearance = spec.get("clearance", 0)
    if isinstance(clearance, bool) or not isinstance(clearance, int):
        raise ConfigError(f"{where}: clearance={clearance!r} must be an integer")
    namespace = spec.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
        raise ConfigError(f"{where}: namespace={namespace!r} must be a non-empty doc-id prefix like 'eng/'")
    for flag in ("write", "unrestricted"):
        if not isinstance(spec.get(flag, False), bool):
            raise ConfigError(f"{where}: {flag}={spec.get(flag)!r} must be true or false")
    if spec.get("write") and not spec.get("unrestricted") and not (spec.get("user") or namespace):
        # the default namespace is "<user>/"; a key hint there would put part of the key into doc ids
        raise ConfigError(f'{where}: a write key needs a "user" or a "namespace" (the doc-id prefix it owns)')
    return Identity(
        user=str(spec.get("user") or key_hint),
        groups=tuple(groups),
        clearance=clearance,
        write=bool(spec.get("write", False)),
        unrestricted=bool(spec.get("unrestricted", False)),
        namespace=namespace,
    )


def load_api_keys(source: Mapping[str, Any] | str | None = None) -> dict[str, Identity]:
    """API keys -> identities from a mapping, a JSON string, a JSON file path, or (None) the environment.

    The environment is RAGROUTE_API_KEYS (JSON) or RAGROUTE_API_KEYS_FILE (path to JSON). The JSON maps
    each key to {"user": "alice", "groups": ["ops"], "clearance": 2, "write": false}; a write key may
    also name the doc-id prefix it owns, "namespace": "ops/" (default "<user>/")."""
    if source is None:
        if os.environ.get("RAGROUTE_API_KEYS"):
            source = os.environ["RAGROUTE_API_KEYS"]
        elif os.environ.get("RAGROUTE_API_KEYS_FILE"):
            source = os.environ["RAGROUTE_API_KEYS_FILE"]
        else:
            return {}
    if isinstance(source, str):
        text = source
        if not source.lstrip().startswith("{"):
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read API key file {source!r}: {exc.strerror or exc}") from None
        try:
            source = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"API keys are not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(source, Mapping):
        raise ConfigError("API keys must be a JSON object mapping key -> {user, groups, clearance}")
    keys: dict[str, Identity] = {}
    for key, spec in source.items():
        if not isinstance(key, str) or len(key) < 8:
            raise ConfigError(f"API key {str(key)[:4]!r}...: keys must be strings of at least 8 characters")
        keys[key] = _identity(f"{key[:4]}...", spec)
    return keys


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The KEY of an `Authorization: Bearer KEY` header (`headers` with lower-case names), or None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def presented_key(headers: Mapping[str, str], keys: Mapping[str, Identity]) -> str | None:
    """The key a request presents: X-API-Key, else a Bearer token unless the server has no keys."""
    if API_KEY_HEADER in headers:
        return headers[API_KEY_HEADER]
    return bearer_token(headers) if keys else None


def identity_for_key(keys: Mapping[str, Identity], presented: str) -> Identity | None:
    """The identity of `presented` among `keys` (every key compared in constant time), or None."""
    found = None
    for key, ident in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = ident
    return found


def authenticate(
    keys: Mapping[str, Identity], presented: str | None, anonymous: Identity | None
) -> Identity | None:
    """Who a request presenting `presented` runs as: its key's identity, `anonymous` on a keyless server
    when no key was presented; None (refuse: 401) otherwise."""
    if presented is None:
        return None if keys else anonymous
    return identity_for_key(keys, presented)
